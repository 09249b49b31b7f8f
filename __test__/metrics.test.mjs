// --metricsPort: the latency histogram, the Prometheus rendering, the loopback HTTP server, and a
// real mount against s3rver whose /metrics and /stats.json agree with its stats file.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as http from 'node:http';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server, headObject } from './helpers/s3server.mjs';
import { startMount, runCli, workdir, run, isMounted, s3Flags, REPO as REPO_DIR, parseStatsFile, freePort } from './helpers/ours.mjs';

const require = createRequire(import.meta.url);
const { Histogram, S3Latencies, LATENCY_BUCKETS } = require('../dist/stats/latency.js');
const { renderPrometheus, statsJSON, numericValue } = require('../dist/stats/prometheus.js');
const { MetricsServer } = require('../dist/stats/metricsServer.js');
const { parseCommandLine } = require('../dist/cli/parseArgs.js');
const { buildConfig } = require('../dist/config/config.js');
const { ConfigError } = require('../dist/errors.js');

// ---- helpers ---------------------------------------------------------------------------------

function get(port, path, { host = '127.0.0.1', method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the error code of a TCP connect attempt, or 'connected'. */
function connectOutcome(port, host) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host, timeout: 3000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('error', (err) => resolve(err.code));
  });
}

/** Local addresses (hex, as /proc/net/tcp writes them) listening on `port`. */
async function listenersOn(port) {
  const found = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.trim().split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [addr, portHex] = fields[1].split(':');
      if (fields[3] === '0A' && parseInt(portHex, 16) === port) found.push(addr);
    }
  }
  return found;
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$/;

/**
 * Parses exposition text strictly enough to catch format mistakes: every line a comment of the
 * HELP/TYPE kind or a valid sample; each family declared once, before its samples.
 */
function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'the text ends in a newline');
  const types = new Map();
  const helps = new Set();
  const samples = [];
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      assert.ok(!helps.has(m[1]), `one HELP for ${m[1]}`);
      helps.add(m[1]);
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.ok(!types.has(m[1]), `one TYPE for ${m[1]}`);
      types.set(m[1], m[2]);
    } else {
      m = SAMPLE.exec(line);
      assert.ok(m, `not a valid sample line: ${JSON.stringify(line)}`);
      const labels = {};
      for (const [, k, v] of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
      const name = m[1];
      const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(types.has(family), `${name} has a TYPE line before it`);
      assert.ok(helps.has(family), `${name} has a HELP line`);
      if (types.get(family) === 'counter') assert.match(name, /_total$/, 'counters end in _total');
      samples.push({ name, family, labels, value: m[4] === '+Inf' ? Infinity : Number(m[4]) });
    }
  }
  return { types, samples };
}

const value = (parsed, name, labels = {}) => {
  const s = parsed.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  assert.ok(s, `sample ${name} ${JSON.stringify(labels)} present`);
  return s.value;
};

/** Checks a histogram series: cumulative buckets, +Inf bucket equals _count; returns the count. */
function checkHistogram(parsed, family, labels) {
  const buckets = parsed.samples.filter(
    (s) => s.name === `${family}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(buckets.length >= 2, `${family} ${JSON.stringify(labels)} has buckets`);
  let previousLe = -Infinity;
  let previous = 0;
  for (const b of buckets) {
    const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
    assert.ok(le > previousLe, 'le increases');
    assert.ok(b.value >= previous, 'buckets are cumulative');
    previousLe = le;
    previous = b.value;
  }
  assert.equal(buckets.at(-1).labels.le, '+Inf');
  const count = value(parsed, `${family}_count`, labels);
  assert.equal(buckets.at(-1).value, count, '+Inf bucket equals _count');
  assert.ok(value(parsed, `${family}_sum`, labels) >= 0);
  return count;
}

const source = (lines) => ({ statsLines: () => lines, resetStats() {} });

// ---- unit tests ------------------------------------------------------------------------------

test('histogram: le is inclusive, buckets cumulative, +Inf equals count, sum kept', () => {
  const h = new Histogram([0.01, 0.1, 1]);
  for (const v of [0.005, 0.01, 0.05, 0.1, 0.5, 2, 30]) h.observe(v);
  const snap = h.snapshot();
  assert.deepEqual(snap.buckets, [
    [0.01, 2],
    [0.1, 4],
    [1, 5],
    [Infinity, 7],
  ]);
  assert.equal(snap.count, 7);
  assert.ok(Math.abs(snap.sum - 32.665) < 1e-9);
  h.reset();
  assert.deepEqual(
    h.snapshot().buckets.map(([, c]) => c),
    [0, 0, 0, 0],
  );
  assert.throws(() => new Histogram([1, 0.5]), /increasing/);
  assert.throws(() => new Histogram([0.1, Infinity]), /finite/);
  // The default bounds are Prometheus-like seconds.
  assert.ok(LATENCY_BUCKETS.length >= 10 && LATENCY_BUCKETS[0] < 0.001 && LATENCY_BUCKETS.at(-1) >= 10);
});

test('S3 latencies: each method has its histogram, others count as "other"', () => {
  const l = new S3Latencies();
  const started = performance.now() - 20; // 20 ms ago
  l.observeSince('GET', started);
  l.observeSince('GET', started);
  l.observeSince('PUT', started);
  l.observeSince('HEAD', started);
  l.observeSince('POST', started);
  assert.equal(l.byOperation.GET.count, 2);
  assert.equal(l.byOperation.PUT.count, 1);
  assert.equal(l.byOperation.HEAD.count, 1);
  assert.equal(l.byOperation.DELETE.count, 0);
  assert.equal(l.byOperation.other.count, 1);
  assert.ok(l.byOperation.GET.sum >= 0.04 && l.byOperation.GET.sum < 5, `GET sum ${l.byOperation.GET.sum} s`);
  // 20 ms lands above the 0.01 s bound.
  const [, atTenMs] = l.byOperation.PUT.snapshot().buckets.find(([le]) => le === 0.01);
  assert.equal(atTenMs, 0);
});

test('Prometheus rendering: valid exposition lines, counters, gauges, seconds, histograms', () => {
  const h = new Histogram([0.1, 1]);
  h.observe(0.05);
  h.observe(0.5);
  h.observe(3);
  const empty = new Histogram([0.1, 1]);
  const text = renderPrometheus({
    stats: [
      source([
        ['http_gets', 12],
        ['http_avg_get_time', '0.250 sec'],
        ['http_total_retry_delay', '1.500 sec'],
      ]),
      source([
        ['block_cache_current_size', 7],
        ['block_cache_read_hit_ratio', '0.7500'],
        ['some_new_counter', 3],
        ['not_a_number', 'n/a'],
      ]),
    ],
    histograms: [
      {
        name: 's3_request_duration_seconds',
        help: 'a "quoted" help\\with backslash',
        series: [
          { labels: { operation: 'GET' }, histogram: h },
          { labels: { operation: 'we"ird' }, histogram: empty },
        ],
      },
    ],
  });
  const parsed = parseExposition(text);
  assert.equal(parsed.types.get('s3backer_http_gets_total'), 'counter');
  assert.equal(value(parsed, 's3backer_http_gets_total'), 12);
  assert.equal(parsed.types.get('s3backer_http_avg_get_time_seconds'), 'gauge');
  assert.equal(value(parsed, 's3backer_http_avg_get_time_seconds'), 0.25);
  assert.equal(parsed.types.get('s3backer_http_retry_delay_seconds_total'), 'counter');
  assert.equal(value(parsed, 's3backer_http_retry_delay_seconds_total'), 1.5);
  assert.equal(parsed.types.get('s3backer_block_cache_current_size'), 'gauge');
  assert.equal(value(parsed, 's3backer_block_cache_read_hit_ratio'), 0.75);
  assert.equal(parsed.types.get('s3backer_some_new_counter'), 'gauge', 'unknown lines still appear, as gauges');
  assert.ok(!text.includes('not_a_number'), 'non-numeric lines are left out');
  assert.equal(parsed.types.get('s3backer_s3_request_duration_seconds'), 'histogram');
  assert.equal(checkHistogram(parsed, 's3backer_s3_request_duration_seconds', { operation: 'GET' }), 3);
  assert.equal(value(parsed, 's3backer_s3_request_duration_seconds_bucket', { operation: 'GET', le: '0.1' }), 1);
  assert.equal(value(parsed, 's3backer_s3_request_duration_seconds_bucket', { operation: 'GET', le: '1' }), 2);
  assert.ok(Math.abs(value(parsed, 's3backer_s3_request_duration_seconds_sum', { operation: 'GET' }) - 3.55) < 1e-9);
  assert.equal(checkHistogram(parsed, 's3backer_s3_request_duration_seconds', { operation: 'we\\"ird' }), 0);
  assert.match(text, /^# HELP s3backer_s3_request_duration_seconds a "quoted" help\\\\with backslash$/m);
});

test('stats as JSON: the stats file names, numbers, seconds for times', () => {
  const json = statsJSON([
    source([
      ['http_gets', 4],
      ['http_avg_get_time', '0.012 sec'],
    ]),
    source([
      ['block_cache_dirty_ratio', '0.2500'],
      ['odd', 'n/a'],
    ]),
  ]);
  assert.deepEqual(json, { http_gets: 4, http_avg_get_time: 0.012, block_cache_dirty_ratio: 0.25, odd: 'n/a', out_of_memory_errors: 0 });
  assert.equal(numericValue('3'), 3);
  assert.equal(numericValue('3 blocks'), 3, "upstream's unit for sizes");
  assert.ok(Number.isNaN(numericValue('n/a')));
});

test('--metricsPort is validated with clear messages', () => {
  const configOf = (...argv) => {
    const cli = parseCommandLine(argv, '0.0.0');
    assert.equal(cli.kind, 'run');
    return buildConfig(cli.args, { HOME: '/nonexistent-home' });
  };
  assert.equal(configOf('--size=1m', 'b', 'mnt').metricsPort, undefined);
  assert.equal(configOf('--metricsPort=9100', '--size=1m', 'b', 'mnt').metricsPort, 9100);
  assert.equal(configOf('-o', 'metricsPort=9101', '--size=1m', 'b', 'mnt').metricsPort, 9101);
  const refused = (args, pattern) =>
    assert.throws(
      () => configOf(...args, '--size=1m', 'b', 'mnt'),
      (e) => e instanceof ConfigError && pattern.test(e.message),
    );
  refused(['--metricsPort=abc'], /^--metricsPort: "abc" is not a whole number$/);
  refused(['--metricsPort=0'], /^--metricsPort: 0 is not a TCP port \(1-65535\)$/);
  refused(['--metricsPort=65536'], /^--metricsPort: 65536 is not a TCP port \(1-65535\)$/);
  refused(['--metricsPort=-5'], /^--metricsPort: "-5" is not a whole number$/);
  refused(['-o', 'metricsPort='], /^--metricsPort: "" is not a whole number$/);
  assert.equal(configOf('--metricsPort=9100', '--size=1m', 'b', 'mnt').metricsAddress, '127.0.0.1', 'loopback unless told');
  assert.equal(configOf('--metricsPort=9100', '--metricsAddress=::', '--size=1m', 'b', 'mnt').metricsAddress, '::');
  refused(['--metricsPort=9100', '--metricsAddress=example.com'], /^--metricsAddress: "example\.com" is not an IP address/);
  refused(['--metricsPort=9100', '--metricsAddress=10.0.0.300'], /^--metricsAddress: "10\.0\.0\.300" is not an IP address/);
  refused(['--metricsAddress=0.0.0.0'], /^--metricsAddress needs --metricsPort$/);
});

test('metrics server: loopback only, 503 until served, 404 elsewhere, port in use refused, closed after', async () => {
  const port = await freePort();
  const server = await MetricsServer.listen(port);
  try {
    assert.equal(server.port, port);
    assert.deepEqual(await listenersOn(port), ['0100007F'], 'bound to 127.0.0.1 and nothing else');
    assert.equal((await get(port, '/metrics')).status, 503, 'nothing to serve before the mount is up');
    await assert.rejects(
      MetricsServer.listen(port),
      (e) => e instanceof ConfigError && /port \d+ on 127\.0\.0\.1 is already in use/.test(e.message),
    );
    server.serve({ prometheus: () => '# HELP x y\n# TYPE x gauge\nx 1\n', json: () => ({ a: 1 }) });
    const metrics = await get(port, '/metrics?x=1');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    assert.equal(metrics.body, '# HELP x y\n# TYPE x gauge\nx 1\n');
    const json = await get(port, '/stats.json');
    assert.equal(json.status, 200);
    assert.match(json.headers['content-type'], /^application\/json/);
    assert.deepEqual(JSON.parse(json.body), { a: 1 });
    assert.equal((await get(port, '/')).status, 404);
    assert.equal((await get(port, '/metrics/extra')).status, 404);
    assert.equal((await get(port, '/metrics', { method: 'POST' })).status, 405);
    assert.notEqual(await connectOutcome(port, '127.0.0.2'), 'connected', 'not reachable on another address');
  } finally {
    await server.close();
  }
  assert.equal(await connectOutcome(port, '127.0.0.1'), 'ECONNREFUSED', 'closed');
});

test('the API handle gives statsJSON() and metrics() (test mode, in a child process)', { timeout: 60000 }, async () => {
  const w = await workdir('metrics-api');
  const port = await freePort();
  // Async I/O only: the mount is served by the same process.
  const script = `
    import { createRequire } from 'node:module';
    import { open } from 'node:fs/promises';
    const api = createRequire(${JSON.stringify(import.meta.url)})('../dist/index.js');
    const h = await api.mount({ bucket: ${JSON.stringify(w.store)}, mountpoint: ${JSON.stringify(w.mnt)},
      flags: { test: true, size: '1m', metricsPort: ${port} } });
    const before = h.statsJSON();
    const f = await open(${JSON.stringify(join(w.mnt, 'file'))}, 'r+');
    await f.write(Buffer.alloc(8192, 7), 0, 8192, 0);
    await f.close();
    await h.flush();
    const after = h.statsJSON();
    const metrics = h.metrics();
    const served = await fetch('http://127.0.0.1:${port}/stats.json').then((r) => r.json());
    await h.unmount();
    // fuse-native keeps the loop alive after unmounting (the CLI exits the same way).
    process.stdout.write(JSON.stringify({ before, after, metrics, served }), () => process.exit(0));
  `;
  try {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: join(REPO_DIR, '__test__') });
    const { before, after, metrics, served } = JSON.parse(stdout);
    assert.equal(typeof before.block_cache_read_hits, 'number');
    assert.equal(before.http_normal_blocks_written, 0);
    assert.equal(after.http_normal_blocks_written, 2, 'two 4 KiB blocks written');
    assert.deepEqual(served, after, 'the HTTP view is the handle view');
    const parsed = parseExposition(metrics);
    assert.equal(value(parsed, 's3backer_http_normal_blocks_written_total'), 2);
    // New whole blocks are written in the session, the rest in the stack: both series are there.
    const writes = ['stack', 'session'].map((where) =>
      checkHistogram(parsed, 's3backer_fuse_request_duration_seconds', { operation: 'write', answered_in: where }),
    );
    assert.ok(writes[0] + writes[1] >= 1, `writes counted: ${writes}`);
    assert.equal(await isMounted(w.mnt), false);
  } finally {
    await w.cleanup();
  }
});

// ---- end to end ------------------------------------------------------------------------------

let s3;
before(async () => {
  s3 = await startS3Server({ buckets: ['disk'] });
});
after(async () => {
  await s3?.stop();
});

test('a real mount serves /metrics and /stats.json consistent with its stats file', { timeout: 180000 }, async () => {
  const w = await workdir('metrics');
  const port = await freePort();
  try {
    // No block cache: every 4 KiB block written is one PUT, every block read one GET.
    const args = [...s3Flags(s3), '--prefix=m/', '--size=1m', '--blockCacheSize=0', `--metricsPort=${port}`, 'disk', w.mnt];
    const m = await startMount(args, w.mnt);
    const file = join(w.mnt, 'file');
    const blocks = 8;
    const payload = randomBytes(blocks * 4096);
    const src = join(w.root, 'payload');
    await writeFile(src, payload);
    await run('dd', [`if=${src}`, `of=${file}`, 'bs=4096', `count=${blocks}`, 'conv=notrunc', 'oflag=direct', 'status=none']);
    const back = join(w.root, 'back');
    await run('dd', [`if=${file}`, `of=${back}`, 'bs=4096', `count=${blocks}`, 'iflag=direct', 'status=none']);
    assert.ok((await readFile(back)).equals(payload), 'the data read back is what was written');

    assert.deepEqual(await listenersOn(port), ['0100007F'], 'the mount listens on 127.0.0.1 only');
    assert.notEqual(await connectOutcome(port, '127.0.0.2'), 'connected');

    const jsonRes = await get(port, '/stats.json');
    const metricsRes = await get(port, '/metrics');
    const fileStats = parseStatsFile(await readFile(join(w.mnt, 'stats'), 'utf8'));
    assert.equal(jsonRes.status, 200);
    assert.equal(metricsRes.status, 200);
    const json = JSON.parse(jsonRes.body);

    // Same names as the stats file, same values (times in seconds, as numbers).
    assert.deepEqual(Object.keys(json), Object.keys(fileStats));
    for (const [name, text] of Object.entries(fileStats)) {
      assert.equal(json[name], Number.parseFloat(text), `${name}: JSON ${json[name]} vs stats file "${text}"`);
    }
    assert.ok(json.http_puts >= blocks, `${json.http_puts} PUTs for ${blocks} blocks written`);
    assert.ok(json.http_normal_blocks_written >= blocks);
    assert.ok(json.http_normal_blocks_read >= blocks);
    assert.ok(json.http_gets >= blocks);

    const parsed = parseExposition(metricsRes.body);
    for (const [name, v] of Object.entries(json)) {
      const sample = parsed.samples.find((s) => s.family === `s3backer_${name}_total` || s.family === `s3backer_${name}`);
      if (sample) assert.equal(sample.value, v, `${sample.name} equals stats.json's ${name}`);
    }
    assert.equal(value(parsed, 's3backer_http_puts_total'), json.http_puts);
    assert.equal(value(parsed, 's3backer_http_gets_total'), json.http_gets);
    assert.equal(value(parsed, 's3backer_http_normal_blocks_written_total'), json.http_normal_blocks_written);
    assert.equal(value(parsed, 's3backer_zero_block_cache_size'), json.zero_block_cache_size);

    // Every GET and PUT operation made at least one timed request; HEAD checked the bucket.
    const family = 's3backer_s3_request_duration_seconds';
    assert.equal(parsed.types.get(family), 'histogram');
    const getCount = checkHistogram(parsed, family, { operation: 'GET' });
    const putCount = checkHistogram(parsed, family, { operation: 'PUT' });
    assert.ok(getCount >= json.http_gets, `GET histogram ${getCount} >= ${json.http_gets} GETs`);
    assert.ok(putCount >= json.http_puts, `PUT histogram ${putCount} >= ${json.http_puts} PUTs`);
    assert.ok(checkHistogram(parsed, family, { operation: 'HEAD' }) >= 1);
    checkHistogram(parsed, family, { operation: 'DELETE' });
    assert.ok(value(parsed, `${family}_sum`, { operation: 'PUT' }) > 0);
    const fuse = 's3backer_fuse_request_duration_seconds';
    assert.ok(checkHistogram(parsed, fuse, { operation: 'write', answered_in: 'stack' }) >= blocks);
    // Reads of cached blocks are answered in the FUSE session, the others by the stack.
    const reads = ['stack', 'session'].map((where) => checkHistogram(parsed, fuse, { operation: 'read', answered_in: where }));
    assert.ok(reads[0] + reads[1] >= blocks, `reads: ${reads}`);

    // More traffic moves the counters of both views together.
    await run('dd', [`if=${src}`, `of=${file}`, 'bs=4096', 'count=1', 'seek=100', 'conv=notrunc', 'oflag=direct', 'status=none']);
    const later = JSON.parse((await get(port, '/stats.json')).body);
    assert.equal(later.http_puts, json.http_puts + 1);
    assert.equal(value(parseExposition((await get(port, '/metrics')).body), 's3backer_http_puts_total'), later.http_puts);
    const laterParsed = parseExposition((await get(port, '/metrics')).body);
    assert.equal(checkHistogram(laterParsed, family, { operation: 'PUT' }), putCount + 1);

    assert.equal((await get(port, '/nothing-here')).status, 404);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
    assert.equal(await connectOutcome(port, '127.0.0.1'), 'ECONNREFUSED', 'the port is closed after unmount');
    assert.deepEqual(await listenersOn(port), []);
  } finally {
    await w.cleanup();
  }
});

test(
  '/metrics has the process, the build and the traffic: CPU, memory, event-loop lag, bytes each way, dirty and in-flight blocks; --metricsAddress',
  { timeout: 180000 },
  async () => {
    const w = await workdir('metrics-process');
    const port = await freePort();
    try {
      // Blocks stay dirty until the fsync (a ten-minute write delay): the gauge can be caught at 8.
      const args = [
        ...s3Flags(s3),
        '--prefix=pm/',
        '--size=1m',
        '--blockSize=4k',
        '--blockCacheWriteDelay=600000',
        `--metricsPort=${port}`,
        '--metricsAddress=127.0.0.2',
        'disk',
        w.mnt,
      ];
      const started = Date.now() / 1000;
      const m = await startMount(args, w.mnt);
      assert.deepEqual(await listenersOn(port), ['0200007F'], 'listening on 127.0.0.2 as told');
      assert.notEqual(await connectOutcome(port, '127.0.0.1'), 'connected');
      assert.match(m.stderr(), new RegExp(`metrics on http://127\\.0\\.0\\.2:${port}/metrics and /stats\\.json`));
      const scrape = async () => parseExposition((await get(port, '/metrics', { host: '127.0.0.2' })).body);
      const first = await scrape();

      const info = first.samples.find((x) => x.family === 's3backer_build_info');
      const pkg = JSON.parse(await readFile(join(REPO_DIR, 'package.json'), 'utf8'));
      assert.deepEqual(info?.labels, { version: pkg.version, node: process.version, bucket: `s3://disk/pm/`, mountpoint: w.mnt });
      assert.equal(info.value, 1);
      assert.ok(value(first, 'process_resident_memory_bytes') > 20 * 2 ** 20, 'resident memory');
      assert.ok(value(first, 'process_open_fds') > 3);
      const startTime = value(first, 'process_start_time_seconds');
      assert.ok(startTime > started - 5 && startTime <= Date.now() / 1000, `started at ${startTime}`);
      for (const name of [
        'nodejs_eventloop_lag_mean_seconds',
        'nodejs_eventloop_lag_p99_seconds',
        'nodejs_eventloop_lag_max_seconds',
        'nodejs_heap_size_used_bytes',
      ]) {
        assert.ok(value(first, name) >= 0 && first.types.get(name) === 'gauge', name);
      }
      assert.equal(first.types.get('process_cpu_seconds_total'), 'counter');
      const cpu0 = value(first, 'process_cpu_seconds_total');
      assert.ok(Math.abs(cpu0 - value(first, 'process_cpu_user_seconds_total') - value(first, 'process_cpu_system_seconds_total')) < 1e-6);
      const sent0 = value(first, 's3backer_http_sent_bytes_total');
      const received0 = value(first, 's3backer_http_received_bytes_total');
      assert.ok(sent0 > 0 && received0 > 0, "the mount's own requests (HEAD, the flag) counted");

      const payload = randomBytes(8 * 4096);
      const src = join(w.root, 'payload');
      await writeFile(src, payload);
      const fh = await open(join(w.mnt, 'file'), 'r+');
      try {
        await fh.write(payload, 0, payload.length, 0);
        let dirty;
        for (let i = 0; i < 100 && dirty !== 8; i++) {
          dirty = value(await scrape(), 's3backer_block_cache_dirty_blocks');
          if (dirty !== 8) await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(dirty, 8, 'eight blocks written, none stored yet');
        await fh.sync();
      } finally {
        await fh.close();
      }
      const after = await scrape();
      assert.equal(value(after, 's3backer_block_cache_dirty_blocks'), 0, 'the fsync stored them');
      assert.equal(value(after, 's3backer_block_cache_uploads_in_flight'), 0);
      assert.equal(value(after, 's3backer_block_cache_fetches_in_flight'), 0);
      const sent = value(after, 's3backer_http_sent_bytes_total') - sent0;
      assert.ok(
        sent >= payload.length && sent < payload.length + 8 * 4096,
        `${sent} bytes sent for ${payload.length} of blocks and their heads`,
      );
      assert.ok(value(after, 's3backer_http_received_bytes_total') > received0, 'the answers counted');
      assert.ok(value(after, 'process_cpu_seconds_total') > cpu0, 'CPU time moved');
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    } finally {
      await w.cleanup();
    }
  },
);

test('a metrics port in use fails the mount: clear message, exit 1, nothing mounted or flagged', { timeout: 120000 }, async () => {
  const w = await workdir('metrics-busy');
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const { port } = blocker.address();
  try {
    for (const foreground of [['-f'], []]) {
      const args = [...foreground, ...s3Flags(s3), '--prefix=busy/', '--size=1m', `--metricsPort=${port}`, 'disk', w.mnt];
      const r = await runCli(args);
      assert.equal(r.code, 1, `exit status with ${foreground.join(' ') || 'daemon mode'}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^s3backer: --metricsPort: port ${port} on 127\\.0\\.0\\.1 is already in use$`, 'm'));
      assert.equal(await isMounted(w.mnt), false, 'no FUSE mount left');
      assert.equal(await headObject(s3, 'disk', 'busy/s3backer-mounted'), null, 'no mounted flag left');
    }
    // And the same bucket mounts once the port is free.
    await new Promise((resolve) => blocker.close(resolve));
    const m = await startMount([...s3Flags(s3), '--prefix=busy/', '--size=1m', `--metricsPort=${port}`, 'disk', w.mnt], w.mnt);
    assert.equal((await get(port, '/metrics')).status, 200);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  } finally {
    if (blocker.listening) blocker.close();
    await w.cleanup();
  }
});
