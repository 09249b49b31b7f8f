// A background mount's serving process starts before the command has read its flags
// (src/cli/daemonPrestart.ts): it waits for the word to go, takes the password asked on the
// terminal with it, and leaves unseen when the flags turn out wrong.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { answerOnTerminal, isMounted, run, runCli, startMount, workdir } from './helpers/ours.mjs';

const require = createRequire(import.meta.url);
const { looksLikeBackgroundMount } = require('../dist/cli/daemonPrestart.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, check, timeoutMs = 20000) {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) if (await check()) return;
  throw new Error(`timed out waiting for ${what}`);
}

/** The environments of the live serving processes (not their logger) whose environment has `mark`. */
async function processesWith(mark) {
  const found = [];
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const env = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    const vars = env.split('\0');
    if (vars.includes(`S3BACKER_TEST_MARK=${mark}`) && vars.includes('S3BACKER_DAEMON_CHILD=1')) found.push(vars);
  }
  return found;
}

test('the guess from the raw arguments: a mount without -f, -d or another mode, and no log file', () => {
  assert.equal(looksLikeBackgroundMount(['bucket', '/mnt']), true);
  assert.equal(looksLikeBackgroundMount(['--size=1g', '-s', 'bucket', '/mnt', '-o', 'blockSize=4k,ro']), true);
  for (const argv of [
    ['-f', 'bucket', '/mnt'],
    ['-d', 'bucket', '/mnt'],
    ['-fs', 'bucket', '/mnt'],
    ['--help'],
    ['-v'],
    ['cache', 'inspect', 'file'],
    ['--erase', 'bucket'],
    ['--reset-mounted-flag', 'bucket'],
    ['--logFile=/tmp/log', 'bucket', '/mnt'],
    ['--logFile', '/tmp/log', 'bucket', '/mnt'],
    ['-o', 'size=1g,logFile=/tmp/log', 'bucket', '/mnt'],
    ['--configFile=/etc/s3b.conf', 'bucket', '/mnt'],
    ['-F', '/etc/s3b.conf', 'bucket', '/mnt'],
  ]) {
    assert.equal(looksLikeBackgroundMount(argv), false, argv.join(' '));
  }
});

test(
  'without -f: the serving process started ahead gets the password asked on the terminal, and leaves when the flags are wrong',
  { timeout: 120000 },
  async () => {
    const w = await workdir('prestart');
    const mark = `prestart-${process.pid}-${Date.now()}`;
    const env = { ...process.env, S3BACKER_TEST_MARK: mark };
    const disk = ['--test', '--encrypt', '--size=1m', '--blockSize=4k'];
    try {
      const asked = await answerOnTerminal([...disk, w.store, w.mnt], 'Password: ', 'sesame\r', { env });
      assert.equal(asked.code, 0, asked.output);
      assert.equal(await isMounted(w.mnt), true, 'mounted when the command returned');
      const serving = await processesWith(mark);
      assert.equal(serving.length, 1, 'one process serves the mount');
      assert.ok(serving[0].includes('S3BACKER_DAEMON_WAIT=1'), 'and it was started ahead of the flags');
      await writeFile(join(w.mnt, 'file'), Buffer.alloc(4096, 0x5a), { flag: 'r+' });
      await run('umount', [w.mnt]);
      await waitFor('the serving process to exit', async () => (await processesWith(mark)).length === 0);

      // The blocks were encrypted with the password typed: a mount given it reads them back.
      const m = await startMount([...disk, '--password=sesame', w.store, w.mnt], w.mnt);
      try {
        assert.ok((await readFile(join(w.mnt, 'file'))).subarray(0, 4096).equals(Buffer.alloc(4096, 0x5a)));
      } finally {
        assert.equal((await m.stop()).code, 0);
      }

      // A wrong flag: one message from the command, and no process left behind.
      const bad = await runCli(['--test', '--size=1m', '--noSuchFlag', w.store, w.mnt], { env });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /noSuchFlag/);
      assert.equal(
        bad.stderr
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('s3backer:')).length,
        1,
        bad.stderr,
      );
      await waitFor('the process started ahead to leave', async () => (await processesWith(mark)).length === 0, 5000);
      assert.equal(await isMounted(w.mnt), false);
    } finally {
      await w.cleanup();
    }
  },
);
