// The mounted flag made race-free: claimed with If-None-Match / If-Match on a store that honours
// them (moto 5.2.5's S3 server, behind the recording proxy so tests can see the headers and
// hold answers back), released only while still ours; read-only mounts respect it as upstream's
// do; stores that refuse the headers fall back with a warning; the --test directory races too.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MOTO_SKIP, motoDiskFlags, useMotoBehindProxy } from './helpers/moto.mjs';
import { getObject, putObject } from './helpers/s3server.mjs';
import { CLI, isMounted, runCli, startMount } from './helpers/ours.mjs';

const require = createRequire(import.meta.url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const env = useMotoBehindProxy('flag', { before, after });

const via = motoDiskFlags;
const flagOf = (prefix) => getObject(env.server, 'disk', `${prefix}s3backer-mounted`);
const flagRequests = (prefix) => env.proxy.requests.filter((r) => r.key === `${prefix}s3backer-mounted`);
const tokenIn = (stderr) => /established mount token ([0-9a-f]{8})/.exec(stderr)?.[1];

/** A foreground mount that may lose: resolves `outcome` with 'mounted' or 'exited'. */
function racer(args, mountpoint) {
  const child = spawn(process.execPath, [CLI, '-f', ...args, mountpoint], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout.on('data', (d) => (stderr += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  exited.then(() => (gone = true));
  const outcome = (async () => {
    for (;;) {
      if (gone) return 'exited';
      if (
        await stat(join(mountpoint, 'file')).then(
          () => true,
          () => false,
        )
      )
        return 'mounted';
      await sleep(20);
    }
  })();
  return { child, exited, outcome, stderr: () => stderr, mountpoint };
}

/** Two mounts of the same store at once, on two mount points: exactly one mounts, the other exits 1. */
async function race(args, round) {
  const racers = [racer(args, env.w1.mnt), racer(args, env.w2.mnt)];
  const outcomes = await Promise.all(racers.map((r) => r.outcome));
  const winner = racers[outcomes.indexOf('mounted')];
  const loser = racers[outcomes.indexOf('exited')];
  assert.ok(winner && loser, `round ${round}: ${outcomes.join(', ')}\n${racers.map((r) => r.stderr()).join('\n')}`);
  assert.deepEqual(await loser.exited, { code: 1, signal: null });
  return { winner, loser };
}

test(
  'moto answers conditional writes as the flag code relies on (412, and 404 for If-Match on a missing key)',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const { buildConfig } = require('../dist/config/config.js');
    const { openObjects } = require('../dist/mount/openObjects.js');
    const { HttpStats } = require('../dist/backend/httpStats.js');
    const { ConditionFailedError } = require('../dist/backend/objectStore.js');
    const { silentLogger } = require('../dist/util/log.js');
    const config = buildConfig({
      flags: { baseURL: `${env.server.endpoint}/`, accessId: 'testing', accessKey: 'testing' },
      positionals: ['disk', env.w1.mnt],
      foreground: true,
      debug: false,
      fuseOptions: [],
    });
    const objects = openObjects(config, new HttpStats(), silentLogger);
    const failed = (status) => (err) => err instanceof ConditionFailedError && err.status === status;
    try {
      const put = (body, condition) => objects.put('probe/k', Buffer.from(body), { contentType: 'text/plain', condition });
      const a = await put('a', { ifNoneMatch: '*' });
      assert.match(a.etag, /^"[0-9a-f]{32}"$/);
      await assert.rejects(put('b', { ifNoneMatch: '*' }), failed(412));
      await assert.rejects(put('b', { ifMatch: '"0123456789abcdef0123456789abcdef"' }), failed(412));
      const b = await put('b', { ifMatch: a.etag });
      await assert.rejects(objects.delete('probe/k', { ifMatch: a.etag }), failed(412));
      assert.equal((await objects.get('probe/k')).body.toString(), 'b');
      await objects.delete('probe/k', { ifMatch: b.etag });
      assert.equal(await objects.get('probe/k'), null);
      await assert.rejects(put('c', { ifMatch: b.etag }), failed(404));
      await objects.delete('probe/k', { ifMatch: b.etag }); // missing: nothing to do
    } finally {
      objects.close();
    }
  },
);

test(
  'two mounts started at the same moment, 20 rounds: exactly one mounts, the other says who won and exits 1',
  { skip: MOTO_SKIP, timeout: 120000 },
  async (t) => {
    const prefix = 'race/';
    const args = [...via(env.proxy.endpoint, prefix), 'disk'];
    let lostAtTheWrite = 0;
    for (let round = 0; round < 20; round++) {
      // Both reads of the flag are answered late, so both mounts find none and race to create it.
      env.proxy.clearFaults();
      env.proxy.inject('slow', { count: 2, only: /^GET \/disk\/race\/s3backer-mounted/, delayMs: 300 });
      const { winner, loser } = await race(args, round);
      assert.equal(await isMounted(loser.mountpoint), false, 'nothing mounted by the loser');
      const lines = loser.stderr().trim().split('\n');
      const last = lines.at(-1);
      assert.match(
        last,
        /^s3backer: s3:\/\/disk\/race\/ (was mounted by host \S+ since \d{8}T\d{6}Z while this mount was starting: not mounted|appears to be mounted already \(flag race\/s3backer-mounted is set by host \S+ since \d{8}T\d{6}Z\))/,
      );
      if (/while this mount was starting/.test(last)) lostAtTheWrite++;
      assert.equal(lines.filter((l) => /warn|error|established/.test(l)).length, 0, loser.stderr());
      const token = tokenIn(winner.stderr());
      assert.equal((await flagOf(prefix)).metadata['s3backer-mount-token'], token, "the flag carries the winner's token");
      winner.child.kill('SIGTERM');
      assert.deepEqual(await winner.exited, { code: 0, signal: null });
      assert.doesNotMatch(winner.stderr(), /warn/);
      assert.equal(await flagOf(prefix), null, 'gone once the winner unmounted');
    }
    t.diagnostic(`${lostAtTheWrite} of 20 losers lost at the conditional write, the others at the first check`);
    // With the reads held back, the losers lost where the race is decided: at the conditional PUT.
    assert.ok(lostAtTheWrite >= 10, `${lostAtTheWrite} of 20 losses at the conditional write`);
  },
);

test(
  '--force takes over the flag it saw (If-Match its ETag); the displaced mount leaves the new flag at unmount',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'takeover/';
    const args = via(env.proxy.endpoint, prefix);
    const a = await startMount([...args, 'disk', env.w1.mnt], env.w1.mnt);
    const seen = await flagOf(prefix);
    env.proxy.clear();
    const b = await startMount([...args, '--force', 'disk', env.w2.mnt], env.w2.mnt);
    assert.match(b.stderr(), /warn: the mounted flag is set; mounting anyway because of --force/);
    const put = flagRequests(prefix).find((r) => r.method === 'PUT');
    assert.equal(put.headers['if-match'], seen.etag, 'the forced PUT is conditional on the flag it overrides');
    const bToken = tokenIn(b.stderr());
    assert.notEqual(bToken, tokenIn(a.stderr()));
    assert.equal((await flagOf(prefix)).metadata['s3backer-mount-token'], bToken);

    assert.deepEqual(await a.stop(), { code: 0, signal: null });
    assert.match(
      a.stderr(),
      /warn: the mounted flag of s3:\/\/disk\/takeover\/ is no longer this mount's \(host \S+ since \d{8}T\d{6}Z holds it\): another mount took it over; leaving it set/,
    );
    assert.equal((await flagOf(prefix)).metadata['s3backer-mount-token'], bToken, "B's flag survives A's unmount");
    assert.deepEqual(await b.stop(), { code: 0, signal: null });
    assert.doesNotMatch(b.stderr(), /no longer this mount's/);
    assert.equal(await flagOf(prefix), null);
  },
);

test(
  'a read-only mount is refused on a set flag unless --force, and never touches the flag',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'ro/';
    const args = via(env.proxy.endpoint, prefix);
    const a = await startMount([...args, 'disk', env.w1.mnt], env.w1.mnt);
    const before = await flagOf(prefix);
    const refused = await runCli(['-f', ...args, '--readOnly', 'disk', env.w2.mnt]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr.trim().split('\n').at(-1),
      /^s3backer: s3:\/\/disk\/ro\/ appears to be mounted already \(flag ro\/s3backer-mounted is set by host .*\); if it is not, use --force or --reset-mounted-flag$/,
    );
    assert.equal(await isMounted(env.w2.mnt), false);
    const ro = await startMount([...args, '--readOnly', '--force', 'disk', env.w2.mnt], env.w2.mnt);
    assert.match(ro.stderr(), /mounting anyway because of --force/);
    assert.deepEqual(await ro.stop(), { code: 0, signal: null });
    assert.equal((await flagOf(prefix)).etag, before.etag, "the flag is exactly the first mount's");
    assert.deepEqual(await a.stop(), { code: 0, signal: null });
    assert.equal(await flagOf(prefix), null);
    // Nothing set: a read-only mount goes ahead and sets nothing.
    const free = await startMount([...args, '--readOnly', 'disk', env.w2.mnt], env.w2.mnt);
    assert.equal(await flagOf(prefix), null);
    assert.deepEqual(await free.stop(), { code: 0, signal: null });
  },
);

const xmlError = (code) => `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`;

test(
  'a store that refuses the headers (501 on PUT, 400 on DELETE): a warning, then plain writes; the flag still comes down',
  { skip: MOTO_SKIP, timeout: 60000 },
  async () => {
    const prefix = 'fallback/';
    const args = via(env.proxy.endpoint, prefix);
    env.proxy.clear();
    env.proxy.clearFaults();
    const refuse = (method, status, code) =>
      env.proxy.inject('answer', {
        only: new RegExp(`^${method} /disk/fallback/s3backer-mounted`),
        status,
        headers: { 'content-type': 'application/xml' },
        body: xmlError(code),
      });
    refuse('PUT', 501, 'NotImplemented');
    refuse('DELETE', 400, 'InvalidArgument');
    const m = await startMount([...args, 'disk', env.w1.mnt], env.w1.mnt);
    assert.match(
      m.stderr(),
      /warn: s3:\/\/disk\/fallback\/ does not take conditional writes \(.*HTTP 501 NotImplemented.*\): the mounted flag is set without protection against a mount starting at the same moment/,
    );
    assert.match((await flagOf(prefix)).metadata['s3backer-mount-token'], /^[0-9a-f]{8}$/);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.equal(await flagOf(prefix), null, 'cleared after comparing the token');
    const seen = flagRequests(prefix).map(
      (r) => `${r.method} ${r.status}${r.headers['if-none-match'] ? ' if-none-match' : ''}${r.headers['if-match'] ? ' if-match' : ''}`,
    );
    assert.deepEqual(seen, ['GET 404', 'PUT 501 if-none-match', 'PUT 200', 'DELETE 400 if-match', 'GET 200', 'DELETE 204']);
  },
);

test('--reset-mounted-flag deletes whatever flag is there, unconditionally', { skip: MOTO_SKIP, timeout: 60000 }, async () => {
  const prefix = 'reset/';
  await putObject(env.server, 'disk', `${prefix}s3backer-mounted`, 'elsewhere\n20260101T000000Z\n', {
    metadata: { 's3backer-mount-token': '0badcafe' },
  });
  env.proxy.clear();
  const res = await runCli([...via(env.proxy.endpoint, prefix).filter((f) => !f.startsWith('--size')), '--reset-mounted-flag', 'disk']);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(await flagOf(prefix), null);
  const del = flagRequests(prefix).find((r) => r.method === 'DELETE');
  assert.equal(del.headers['if-match'], undefined);
});

test('--test: two mounts of one directory started at the same moment, 8 rounds: exactly one mounts', { timeout: 120000 }, async () => {
  const args = ['--test', '--size=1m', env.w1.store];
  for (let round = 0; round < 8; round++) {
    const { winner, loser } = await race(args, round);
    assert.match(loser.stderr(), /(while this mount was starting: not mounted|appears to be mounted already)/);
    winner.child.kill('SIGTERM');
    assert.deepEqual(await winner.exited, { code: 0, signal: null });
    await assert.rejects(stat(join(env.w1.store, 's3backer-mounted')), { code: 'ENOENT' });
  }
});
