// The man page (man/s3backer.1) and the README document every flag the built CLI's --help
// prints, and the page renders without warnings.
//   node --test __test__/unit/manpage.test.mjs
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, CLI } from '../helpers/ours.mjs';

const run = promisify(execFile);
const MAN_PAGE = join(REPO, 'man', 's3backer.1');
const source = readFileSync(MAN_PAGE, 'utf8');
const readme = readFileSync(join(REPO, 'README.md'), 'utf8');

/** Every `--flag` name the help text mentions (option lines, usage lines and descriptions). */
async function helpFlags() {
  const { stdout } = await run(process.execPath, [CLI, '--help']);
  assert.match(stdout, /^Usage: s3backer/m);
  return [...new Set(stdout.match(/(?<![\w-])--[A-Za-z][\w-]*/g) ?? [])].map((f) => f.replace(/-+$/, '')).sort();
}

/** The page's text with roff escapes for dashes and fonts removed, comments dropped. */
const manText = source
  .split('\n')
  .filter((line) => !/^\.\s*\\"/.test(line))
  .join('\n')
  .replace(/\\-/g, '-')
  .replace(/\\f(\[[^\]]*\]|\(..|.)/g, '')
  .replace(/\\[c&]/g, '');

const mentions = (text, flag) => new RegExp(`(?<![\\w-])${flag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`).test(text);

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

test('the man page describes every flag of --help', async () => {
  const flags = await helpFlags();
  assert.ok(flags.length > 60, `found ${flags.length} flags in --help`);
  const missing = flags.filter((f) => !mentions(manText, f));
  assert.deepEqual(missing, [], `flags of --help missing from man/s3backer.1: ${missing.join(' ')}`);
  // Each option of the list has its own entry (a .TP paragraph starting with the flag).
  const { stdout } = await run(process.execPath, [CLI, '--help']);
  const optionLines = stdout
    .split('\n')
    .map((l) => /^  (?:-\w, )?(--[\w-]+)/.exec(l)?.[1])
    .filter(Boolean);
  const entries = new Set([...manText.matchAll(/^\.TP\n\.(?:B|BI|BR|IR|I)\s+(?:-\w\s*"?,\s*"?\s*)?(--[\w-]+)/gm)].map((m) => m[1]));
  const noEntry = optionLines.filter((f) => !entries.has(f));
  assert.deepEqual(noEntry, [], `options without their own entry in OPTIONS: ${noEntry.join(' ')}`);
});

test('the README mentions every flag of --help', async () => {
  const flags = await helpFlags();
  const missing = flags.filter((f) => !mentions(readme, f));
  assert.deepEqual(missing, [], `flags of --help missing from README.md: ${missing.join(' ')}`);
});

test('the man page has the sections, synopsis forms and examples a reader expects', () => {
  assert.match(source, /^\.TH S3BACKER 1 /m);
  for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'FILES', 'ENVIRONMENT', 'EXAMPLES', '"SEE ALSO"|SEE ALSO']) {
    assert.match(source, new RegExp(`^\\.SH (${section})$`, 'm'), `section ${section}`);
  }
  assert.match(manText, /^s3backer - /m, 'NAME line in whatis form');
  const synopsis = manText.slice(manText.indexOf('.SH SYNOPSIS'), manText.indexOf('.SH DESCRIPTION'));
  for (const form of ['--test', '--erase', '--reset-mounted-flag', 'cache inspect', 'bucket', 'mountpoint', 'subdir']) {
    assert.ok(synopsis.includes(form), `SYNOPSIS shows ${form}`);
  }
  assert.ok(mentions(manText, '--metricsPort'), '--metricsPort is documented');
  assert.match(manText, /\.s3backer_passwd/);
  assert.match(manText, /AWS_ACCESS_KEY_ID/);
  assert.match(manText, /s3backer#\S+\s+\S+\s+fuse\s+noauto/, 'fstab example (s3backer#bucket ... fuse)');
  assert.match(manText, /\s+fuse\.s3backer\s+/, 'fstab example (fuse.s3backer type)');
  assert.match(manText, /mount -o loop/);
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  assert.deepEqual(pkg.man, ['./man/s3backer.1'], 'installed through package.json "man"');
  assert.ok(pkg.files.includes('man/s3backer.1'), 'packed through package.json "files"');
});

test('the man page renders without warnings', async (t) => {
  /** @type {[string, string[]][]} */
  const checks = [];
  if (have('mandoc')) checks.push(['mandoc', ['-T', 'lint', '-W', 'warning', MAN_PAGE]]);
  if (have('groff')) checks.push(['groff', ['-man', '-ww', '-z', '-t', MAN_PAGE]]);
  if (have('man')) checks.push(['man', ['--warnings', '-E', 'UTF-8', '-l', MAN_PAGE]]);
  for (const [cmd, args] of checks) {
    const res = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
    assert.equal(res.status, 0, `${cmd} ${args.join(' ')} failed: ${res.stderr}`);
    assert.equal(res.stderr.trim(), '', `${cmd} warns:\n${res.stderr}`);
    if (cmd === 'man') assert.match(res.stdout, /--blockCacheSize/);
  }
  if (checks.length > 0) {
    t.diagnostic(`checked with ${checks.map(([c]) => c).join(', ')}`);
    return;
  }
  // No formatter here: check the macros at least.
  t.diagnostic('no mandoc, groff or man installed: checked the roff macros only');
  const known = new Set([
    'TH',
    'SH',
    'SS',
    'TP',
    'PP',
    'P',
    'LP',
    'IP',
    'RS',
    'RE',
    'B',
    'I',
    'BI',
    'BR',
    'IB',
    'IR',
    'RB',
    'RI',
    'nf',
    'fi',
    'br',
    'nh',
    'ad',
    'sp',
    'EX',
    'EE',
  ]);
  const lines = source.split('\n');
  lines.forEach((line, i) => {
    if (!line.startsWith('.') || /^\.\s*\\"/.test(line)) return;
    const macro = /^\.(\S+)/.exec(line)?.[1];
    assert.ok(known.has(macro), `line ${i + 1}: unknown macro .${macro}`);
  });
  let depth = 0;
  for (const line of lines) {
    if (line === '.RS' || line.startsWith('.RS ')) depth++;
    if (line === '.RE') depth--;
    assert.ok(depth >= 0, 'unbalanced .RE');
  }
  assert.equal(depth, 0, 'unbalanced .RS');
  assert.equal(lines.filter((l) => l === '.nf').length, lines.filter((l) => l === '.fi').length, '.nf/.fi pairs');
});
