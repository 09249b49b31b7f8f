// --erase deletes every block and the mounted flag; it asks first, on a terminal or through a
// pipe (`echo y | s3backer --erase`, as upstream), and never erases without an answer or --force.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startS3Server, listKeys, putObject } from './helpers/s3server.mjs';
import { answerOnTerminal, runCli, s3Flags, CLI } from './helpers/ours.mjs';

let server;
before(async () => {
  server = await startS3Server({ buckets: ['disk'] });
});
after(async () => {
  await server?.stop();
});

async function fillBucket(prefix, n) {
  for (let i = 0; i < n; i++) await putObject(server, 'disk', `${prefix}${i.toString(16).padStart(8, '0')}`, Buffer.alloc(512, 1));
  await putObject(server, 'disk', `${prefix}unrelated.txt`, 'keep me');
}

/** Runs the CLI with `input` piped into its standard input, as `echo y | s3backer ...` does. */
function runPiped(args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
    child.stdin.end(input);
  });
}

test('in a script, --erase takes the answer piped to it; no answer, or no, erases nothing', { timeout: 120000 }, async () => {
  await fillBucket('a/', 30);
  const res = await runCli([...s3Flags(server), '--prefix=a/', '--erase', 'disk']);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /not erased: no answer on standard input \(--force erases the 30 blocks without asking\)/);
  assert.equal((await listKeys(server, 'disk', 'a/')).length, 31);
  const no = await runPiped([...s3Flags(server), '--prefix=a/', '--erase', 'disk'], 'n\n');
  assert.equal(no.code, 1);
  assert.match(no.stderr, /Erase all 30 blocks of s3:\/\/disk\/a\/\? This cannot be undone\. \[y\/N\] /);
  assert.match(no.stderr, /not erased/);
  assert.equal((await listKeys(server, 'disk', 'a/')).length, 31);

  await putObject(server, 'disk', 'a/s3backer-mounted', 'host\n', { metadata: { 's3backer-mount-token': 'abc' } });
  const mounted = await runPiped([...s3Flags(server), '--prefix=a/', '--erase', 'disk'], 'y\n');
  assert.match(mounted.stderr, /appears to be mounted/);
  assert.equal((await listKeys(server, 'disk', 'a/')).length, 32);
  const forced = await runCli([...s3Flags(server), '--prefix=a/', '--erase', '--force', 'disk']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stderr, /erased 30 blocks/);
  assert.deepEqual(await listKeys(server, 'disk', 'a/'), ['a/unrelated.txt'], 'blocks and flag gone, other objects kept');

  await fillBucket('p/', 5);
  const yes = await runPiped([...s3Flags(server), '--prefix=p/', '--erase', 'disk'], 'y\n');
  assert.equal(yes.code, 0, yes.stderr);
  assert.match(yes.stderr, /erased 5 blocks/);
  assert.deepEqual(await listKeys(server, 'disk', 'p/'), ['p/unrelated.txt']);
});

test('on a terminal, --erase asks and erases only on yes', { timeout: 120000 }, async () => {
  await fillBucket('t/', 12);
  const no = await answerOnTerminal([...s3Flags(server), '--prefix=t/', '--erase', 'disk'], '[y/N]', 'n\n');
  assert.ok(no.answered, no.output);
  assert.match(no.output, /Erase all 12 blocks of s3:\/\/disk\/t\/\? This cannot be undone\. \[y\/N\]/);
  assert.equal(no.code, 1);
  assert.equal((await listKeys(server, 'disk', 't/')).length, 13);
  const yes = await answerOnTerminal([...s3Flags(server), '--prefix=t/', '--erase', 'disk'], '[y/N]', 'y\n');
  assert.equal(yes.code, 0, yes.output);
  assert.match(yes.output, /\rblocks deleted: 12\/12 in \d+\.\d s/, 'progress on the terminal');
  assert.match(yes.output, /erased 12 blocks/);
  assert.deepEqual(await listKeys(server, 'disk', 't/'), ['t/unrelated.txt']);
});
