// Where a mount's messages go: a background mount logs to syslog through one long-lived logger
// process, or to --logFile; a fault after the mount (an unhandled rejection) is logged before the
// process ends; a foreground mount stamps its lines with the time when stderr is not a terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, mkdir, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, startMount, workdir, run, isMounted, unstamped, s3Flags, REPO } from './helpers/ours.mjs';
import { startS3Server } from './helpers/s3server.mjs';
import { waitUntil as waitFor } from './helpers/listing.mjs';

const FAULT = join(REPO, '__test__', 'helpers', 'faultOnSignal.cjs');
const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z s3backer: /;

/** Pids of the process serving a mount (its title names the store and the mount point). */
async function servers(store, mnt) {
  const r = await run('pgrep', ['-f', `^s3backer ${store} ${mnt}$`]).catch(() => ({ stdout: '' }));
  return r.stdout.split('\n').filter(Boolean);
}

/**
 * Mounts in the background (`args` end with the store and the mount point) with the fault hook
 * preloaded; resolves the serving process's pid and a function that faults it and waits until
 * it is gone (its mount left stale, then detached).
 */
async function mountInBackground(args) {
  const [store, mnt] = args.slice(-2);
  const env = { ...process.env, NODE_OPTIONS: `--require=${FAULT}` };
  const r = await runCli(args, { env });
  assert.equal(r.code, 0, `the background mount started: ${r.stderr}`);
  assert.ok(await isMounted(mnt));
  const [pid, ...more] = await servers(store, mnt);
  assert.ok(pid !== undefined && more.length === 0, 'one process serves the mount');
  return async function fault() {
    process.kill(Number(pid), 'SIGUSR2');
    await waitFor('the serving process to end', async () => (await servers(store, mnt)).length === 0);
    await run('umount', ['-l', mnt]).catch(() => {});
  };
}

test(
  'a background mount with --logFile: every line stamped, a fault after the mount logged before the process ends',
  { timeout: 60000 },
  async () => {
    const w = await workdir('daemon-logfile');
    const log = join(w.root, 'logs', 's3backer.log');
    await mkdir(join(w.root, 'logs'));
    await writeFile(log, 'a line from before\n');
    try {
      const fault = await mountInBackground(['--test', '--size=16m', '--blockSize=64k', `--logFile=${log}`, w.store, w.mnt]);
      let text = await readFile(log, 'utf8');
      const lines = text.trim().split('\n');
      assert.equal(lines[0], 'a line from before', 'appended to, not replaced');
      assert.ok(
        lines.slice(1).every((l) => STAMP.test(l)),
        `every line stamped:\n${text}`,
      );
      assert.ok(
        lines.slice(1).some((l) => unstamped(l) === `s3backer: mounted ${w.store} on ${w.mnt}`),
        text,
      );
      await fault();
      text = await readFile(log, 'utf8');
      const faultLine = text.split('\n').find((l) => l.includes('injected fault'));
      assert.ok(faultLine, `the fault is in the log:\n${text}`);
      assert.equal(unstamped(faultLine), 's3backer: error: unhandled rejection: Error: injected fault after the mount');
      assert.match(text, /^ {4}at .*faultOnSignal\.cjs/m, 'with where it came from');
    } finally {
      await w.cleanup();
    }
  },
);

test(
  'a background mount logs to syslog through one logger process for its whole life, each line at its priority',
  { timeout: 60000 },
  async (t) => {
    if (existsSync('/dev/log')) return t.skip('a syslog daemon owns /dev/log here: its messages cannot be read back by this test');
    const w = await workdir('daemon-syslog');
    const server = await startS3Server({ buckets: ['disk'] });
    const received = join(w.root, 'syslog');
    await writeFile(received, '');
    // logger(1) writes to /dev/log: a stand-in receiver takes its place for the test.
    const sink = spawn('python3', [join(REPO, '__test__', 'helpers', 'syslogSink.py'), '/dev/log', received], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise((resolve, reject) => {
        sink.stdout.once('data', resolve);
        sink.once('exit', (code) => reject(new Error(`the syslog stand-in exited (${code})`)));
      });
      const loggersBefore = await loggers();
      // --debug-http: a line per request (each of which used to start a logger process of its own).
      const fault = await mountInBackground([...s3Flags(server), '--debug-http', '--blockSize=64k', '--size=16m', 'disk', w.mnt]);
      await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'file')}`, 'bs=64k', 'count=16', 'conv=notrunc,fsync', 'status=none']);
      const text = await waitFor("the mount's lines", async () => {
        const got = await readFile(received, 'utf8');
        return (got.match(/ PUT /g) ?? []).length >= 16 ? got : undefined;
      });
      const lines = text.trim().split('\n');
      assert.deepEqual((await loggers()).length - loggersBefore.length, 1, `one logger process for ${lines.length} lines`);
      // <30> is daemon.info, <27> daemon.err: facility daemon as upstream's syslog(3).
      assert.ok(
        lines.some((l) => /^<30>.* s3backer: mounted \S+ on \S+$/.test(l)),
        text,
      );
      assert.ok(lines.filter((l) => /^<30>.* s3backer: http: PUT /.test(l)).length >= 16, text);
      await fault();
      const after = await waitFor('the fault', async () => {
        const got = await readFile(received, 'utf8');
        return got.includes('injected fault') ? got : undefined;
      });
      assert.ok(
        after.split('\n').some((l) => /^<27>.* s3backer: unhandled rejection: Error: injected fault after the mount$/.test(l)),
        after,
      );
      await waitFor('logger to end with the mount', async () => (await loggers()).length === loggersBefore.length);
    } finally {
      sink.kill();
      await rm('/dev/log', { force: true });
      await w.cleanup();
      await server.stop();
    }
  },
);

async function loggers() {
  const r = await run('pgrep', ['-f', '^logger --prio-prefix -t s3backer']).catch(() => ({ stdout: '' }));
  return r.stdout.split('\n').filter(Boolean);
}

test('in the foreground: lines stamped when stderr is not a terminal; --logFile takes them instead', { timeout: 60000 }, async () => {
  const w = await workdir('fg-log');
  try {
    let m = await startMount(['--test', '--size=4m', '--blockSize=64k', w.store, w.mnt], w.mnt);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    const lines = m.stderr().trim().split('\n');
    assert.ok(lines.length >= 3 && lines.every((l) => STAMP.test(l)), m.stderr());
    assert.deepEqual(lines.map(unstamped).slice(-1), [`s3backer: unmounted ${w.mnt}`]);

    const log = join(w.root, 'fg.log');
    m = await startMount(['--test', '--size=4m', '--blockSize=64k', `--logFile=${log}`, w.store, w.mnt], w.mnt);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.equal(m.stderr(), '', 'nothing on stderr');
    const logged = (await readFile(log, 'utf8')).trim().split('\n');
    assert.ok(
      logged.every((l) => STAMP.test(l)),
      logged.join('\n'),
    );
    assert.equal(unstamped(logged.at(-1)), `s3backer: unmounted ${w.mnt}`);
  } finally {
    await w.cleanup();
  }
});

test('a --logFile that cannot be written: one clear line, exit 1, nothing mounted', { timeout: 60000 }, async () => {
  const w = await workdir('bad-log');
  try {
    for (const [bad, why] of [
      [w.root, /illegal operation on a directory|is a directory/i],
      [join(w.root, 'missing', 'log'), /no such file or directory/],
    ]) {
      for (const mode of [[], ['-f']]) {
        const r = await runCli([...mode, '--test', `--logFile=${bad}`, w.store, w.mnt]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`^s3backer: --logFile: cannot write to ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
        assert.match(r.stderr, why);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.equal(await isMounted(w.mnt), false);
      }
    }
  } finally {
    await w.cleanup();
  }
});
