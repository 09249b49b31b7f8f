// HTTP proxies from the environment, as upstream s3backer (through libcurl) reads them: http_proxy
// for http:// endpoints (absolute-form requests), https_proxy / HTTPS_PROXY for https:// (CONNECT
// tunnels, the certificate still checked inside), all_proxy, no_proxy, user:password in the URL.
// The proxy is Debian's tinyproxy on loopback; every request line it saw is in its log.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { proxyFor, bypassed } from '../dist/backend/s3/proxy.js';
import { startS3Server, headObject } from './helpers/s3server.mjs';
import { startTinyproxy } from './helpers/tinyproxy.mjs';
import { startTlsFront } from './helpers/tlsFront.mjs';
import { upstreamConnectionArgs, UPSTREAM_BIN } from './helpers/upstream.mjs';
import * as io from './helpers/blockIO.mjs';
import { runCli, startMount, workdir, isMounted, s3Flags, freePort } from './helpers/ours.mjs';
import { waitForLog } from './helpers/listing.mjs';

const env = {};
const BS = 65536;
const sha = (b) => createHash('sha256').update(b).digest('hex');
const quick = ['--initialRetryPause=50', '--maxRetryPause=400', '--timeout=5'];
/** The test's environment without any proxy variable of its own, plus `vars`. */
const envWith = (vars) => {
  const e = { ...process.env };
  for (const k of Object.keys(e)) if (/^(https?|all|no)_proxy$/i.test(k)) delete e[k];
  return { ...e, ...vars };
};

let proxy;
let authProxy;
let front;
// One hook: node 20 runs a file's top-level before hooks without waiting for each other.
before(async () => {
  env.server = await startS3Server({ buckets: ['disk'] });
  env.w = await workdir('proxy');
  proxy = await startTinyproxy(env.w.root);
  authProxy = await startTinyproxy(env.w.root, { user: 'alice', password: 'pr0xy-s3cret' });
  front = await startTlsFront(env.server, env.w.root);
});
after(async () => {
  front?.close();
  await proxy?.stop();
  await authProxy?.stop();
  await env.w?.cleanup();
  await env.server?.stop();
});

test('which proxy a request uses: the variables and their order, no_proxy, the URL forms (as libcurl)', () => {
  const http = new URL('http://s3.example.com:9000/');
  const https = new URL('https://s3.eu-west-1.amazonaws.com/');
  assert.equal(proxyFor(http, {}), undefined);
  assert.equal(proxyFor(http, { HTTP_PROXY: 'http://p:3128' }), undefined, 'HTTP_PROXY is ignored, as libcurl does');
  assert.equal(proxyFor(https, { http_proxy: 'http://p:3128' }), undefined, 'http_proxy is for http:// only');
  assert.deepEqual(
    { ...proxyFor(http, { http_proxy: 'http://p.corp:3128' }) },
    { host: 'p.corp', port: 3128, authorization: undefined, display: 'http://p.corp:3128', variable: 'http_proxy' },
  );
  assert.equal(proxyFor(https, { HTTPS_PROXY: 'http://upper:1' }).host, 'upper');
  assert.equal(proxyFor(https, { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' }).host, 'lower');
  assert.equal(proxyFor(https, { ALL_PROXY: 'http://all:1' }).variable, 'ALL_PROXY');
  assert.equal(proxyFor(http, { all_proxy: 'http://all:1', ALL_PROXY: 'http://ALL:1' }).host, 'all');
  assert.equal(proxyFor(https, { https_proxy: '', all_proxy: 'http://all:1' }).host, 'all', 'an empty variable is not set');
  // No scheme: http://; no port: 1080 (libcurl's).
  const bare = proxyFor(http, { http_proxy: 'proxy.corp' });
  assert.deepEqual([bare.host, bare.port], ['proxy.corp', 1080]);
  assert.equal(proxyFor(http, { http_proxy: 'http://[::1]:8080' }).host, '::1');
  // Credentials: percent-decoded into Basic, never shown.
  const auth = proxyFor(https, { https_proxy: 'http://al%40ice:p%20w%3A@p:3128' });
  assert.equal(auth.authorization, `Basic ${Buffer.from('al@ice:p w:').toString('base64')}`);
  assert.equal(auth.display, 'http://al%40ice@p:3128');
  assert.ok(!auth.display.includes('p%20w'));
  // Proxies we cannot speak to are refused with the variable's name, never its value.
  assert.throws(
    () => proxyFor(https, { https_proxy: 'socks5://u:hunter2@p:1080' }),
    (err) => /https_proxy: socks5:\/\/ proxies are not supported/.test(err.message) && !err.message.includes('hunter2'),
  );
  assert.throws(
    () => proxyFor(http, { http_proxy: 'http://u:hunter2@[bad' }),
    (err) => /http_proxy is not a proxy URL/.test(err.message) && !err.message.includes('hunter2'),
  );

  // no_proxy (or NO_PROXY) names hosts reached directly.
  const via = (url, noProxy) =>
    proxyFor(new URL(url), { http_proxy: 'http://p:1', https_proxy: 'http://p:1', no_proxy: noProxy }) !== undefined;
  assert.equal(via('https://s3.amazonaws.com/', '*'), false);
  assert.equal(via('https://bucket.s3.amazonaws.com/', 'amazonaws.com'), false);
  assert.equal(via('https://amazonaws.com/', '.amazonaws.com'), false, 'a leading dot changes nothing');
  assert.equal(via('https://notamazonaws.com/', 'amazonaws.com'), true, 'a suffix must end at a dot');
  assert.equal(via('http://10.1.2.3:9000/', 'example.com, 10.0.0.0/8'), false);
  assert.equal(via('http://10.1.2.3:9000/', '10.1.2.4'), true);
  assert.equal(via('http://192.168.0.9/', '192.168.0.9'), false);
  assert.equal(via('http://[::1]:9000/', '::1'), false);
  assert.equal(via('http://s3.local/', 'S3.LOCAL'), false, 'names compare without case');
  assert.equal(proxyFor(http, { http_proxy: 'http://p:1', NO_PROXY: 'example.com' }), undefined);
  assert.equal(bypassed('10.0.0.1', '10.0.0.0/99'), false, 'a prefix out of range names nothing');
});

test(
  'an http:// endpoint through http_proxy: every request goes through it (the listing too), and upstream s3backer takes the same variable',
  { timeout: 180000 },
  async () => {
    const penv = envWith({ http_proxy: proxy.url });
    const data = randomBytes(8 * BS);
    const args = [...s3Flags(env.server), '--prefix=h/', '--blockSize=64k', '--size=4m', '--blockCacheSize=4', 'disk', env.w.mnt];
    let m = await startMount(args, env.w.mnt, { env: penv });
    try {
      assert.match(m.stderr(), /requests to S3 go through the proxy http:\/\/127\.0\.0\.1:\d+ \(from http_proxy\)/);
      await io.writeAt(env.w.root, join(env.w.mnt, 'file'), 0, data);
      assert.equal(sha(await io.readAt(env.w.root, join(env.w.mnt, 'file'), 0, data.length)), sha(data));
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    m = await startMount(['--listBlocks', ...args], env.w.mnt, { env: penv });
    await waitForLog(m, /found 8 non-zero blocks/); // the listing runs in the background
    assert.deepEqual(await m.stop(), { code: 0, signal: null });

    const origin = `http://127.0.0.1:${env.server.port}`;
    const seen = await proxy.requests();
    for (const line of [
      `PUT ${origin}/disk/h/s3backer-mounted HTTP/1.1`,
      `PUT ${origin}/disk/h/00000007 HTTP/1.1`,
      `GET ${origin}/disk/h/00000000 HTTP/1.1`,
      `DELETE ${origin}/disk/h/s3backer-mounted HTTP/1.1`,
    ]) {
      assert.ok(seen.includes(line), `the proxy saw ${line}`);
    }
    assert.ok(
      seen.some((l) => l.startsWith(`GET ${origin}/disk/?list-type=2`) && l.includes('prefix=h%2F')),
      'the listing went through it too',
    );
    assert.equal(sha(await io.contentInS3(env.server, env.w, 'h/', data.length)), sha(data), 'what went through the proxy is in S3');

    // Debian's s3backer reads the same variable (libcurl does): its requests show up in the same log.
    const before = seen.length;
    const up = spawnSync(UPSTREAM_BIN, [...upstreamConnectionArgs(env.server), '--prefix=h/', '--reset-mounted-flag', 'disk'], {
      env: penv,
      encoding: 'utf8',
      timeout: 60000,
    });
    assert.equal(up.status, 0, up.stderr);
    const upstreamSaw = (await proxy.requests()).slice(before);
    assert.ok(
      upstreamSaw.some((l) => l.startsWith(`HEAD ${origin}/disk/h/`)),
      `upstream went through the proxy: ${upstreamSaw.join(' | ')}`,
    );
  },
);

test(
  'an https:// endpoint through https_proxy: CONNECT tunnels, the certificate still checked inside them',
  { timeout: 180000 },
  async () => {
    const penv = envWith({ https_proxy: proxy.url });
    const before = (await proxy.requests()).length;
    const tlsArgs = [
      `--baseURL=${front.endpoint}/`,
      `--accessId=${env.server.accessKeyId}`,
      `--accessKey=${env.server.secretAccessKey}`,
      `--region=${env.server.region}`,
    ];
    const args = [...tlsArgs, '--prefix=s/', '--blockSize=64k', '--size=4m', '--blockCacheSize=4', 'disk', env.w.mnt];

    // Not trusted: the tunnel is no way around the certificate check.
    const refused = await runCli(['-f', ...quick, ...args], { env: penv });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot reach bucket disk .*self[- ]signed certificate/);

    const data = randomBytes(8 * BS);
    let m = await startMount([`--cacert=${front.certFile}`, ...args], env.w.mnt, { env: penv });
    try {
      assert.match(m.stderr(), /through the proxy http:\/\/127\.0\.0\.1:\d+ \(from https_proxy\)/);
      await io.writeAt(env.w.root, join(env.w.mnt, 'file'), 0, data);
      assert.equal(sha(await io.readAt(env.w.root, join(env.w.mnt, 'file'), 0, data.length)), sha(data));
    } finally {
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    }
    m = await startMount([`--cacert=${front.certFile}`, '--listBlocks', ...args], env.w.mnt, { env: penv });
    await waitForLog(m, /found 8 non-zero blocks/); // the listing runs in the background
    assert.deepEqual(await m.stop(), { code: 0, signal: null });

    const seen = (await proxy.requests()).slice(before);
    assert.ok(seen.length >= 3, `tunnels were opened: ${seen.length}`);
    for (const line of seen)
      assert.equal(line, `CONNECT 127.0.0.1:${front.port} HTTP/1.1`, 'nothing but tunnels: the proxy never sees a request inside');
    assert.equal(sha(await io.contentInS3(env.server, env.w, 's/', data.length)), sha(data), 'what went through the tunnels is in S3');
  },
);

test(
  'a proxy that wants a password: a clear 407 at once without one, the mount works with one, and the password is never shown',
  { timeout: 180000 },
  async () => {
    const base = [...s3Flags(env.server), ...quick, '--prefix=a/', '--blockSize=64k', '--size=1m', 'disk', env.w.mnt];
    // Forwarded (http://) and tunnelled (https://): both say what is wrong, without retrying it.
    for (const [vars, flags, pattern] of [
      [{ http_proxy: authProxy.url }, base, /HTTP 407: the proxy wants a user name and password \(give them in the proxy URL\)/],
      [
        { https_proxy: authProxy.url },
        [`--baseURL=${front.endpoint}/`, `--cacert=${front.certFile}`, ...base.slice(1)],
        /proxy http:\/\/127\.0\.0\.1:\d+ refused the tunnel to 127\.0\.0\.1:\d+: 407 .*\(the proxy wants a user name and password in its URL\)/,
      ],
    ]) {
      const started = Date.now();
      const res = await runCli(['-f', ...flags], { env: envWith(vars) });
      assert.equal(res.code, 1, res.stderr);
      assert.match(res.stderr, pattern);
      assert.ok(!res.stderr.includes('    at '), 'no stack trace');
      assert.ok(Date.now() - started < 10000, `not retried for the whole budget: ${Date.now() - started} ms`);
      assert.equal(await isMounted(env.w.mnt), false);
      assert.equal(await headObject(env.server, 'disk', 'a/s3backer-mounted'), null, 'no mounted flag');
    }
    const withPassword = `http://alice:pr0xy-s3cret@127.0.0.1:${authProxy.port}`;
    for (const vars of [{ http_proxy: withPassword }, { https_proxy: withPassword }]) {
      const flags = vars.https_proxy ? [`--baseURL=${front.endpoint}/`, `--cacert=${front.certFile}`, ...base.slice(1)] : base;
      const m = await startMount(['--debug', '--debug-http', ...flags], env.w.mnt, { env: envWith(vars) });
      await io.writeAt(env.w.root, join(env.w.mnt, 'file'), 0, randomBytes(BS));
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
      assert.match(m.stderr(), /through the proxy http:\/\/alice@127\.0\.0\.1:\d+/);
      assert.ok(!m.stderr().includes('pr0xy-s3cret'), 'the proxy password stays out of the log');
    }
  },
);

test('no_proxy takes the endpoint past a proxy; a proxy that is not there is a clear error', { timeout: 120000 }, async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const base = [...s3Flags(env.server), ...quick, '--prefix=n/', '--blockSize=64k', '--size=1m', 'disk', env.w.mnt];
  const res = await runCli(['-f', ...base], { env: envWith({ http_proxy: dead }) });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /cannot reach bucket disk at \S+: .*through the proxy http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  assert.equal(await headObject(env.server, 'disk', 'n/s3backer-mounted'), null);

  const m = await startMount(base, env.w.mnt, { env: envWith({ http_proxy: dead, no_proxy: 'localhost,127.0.0.1' }) });
  assert.doesNotMatch(m.stderr(), /through the proxy/);
  await io.writeAt(env.w.root, join(env.w.mnt, 'file'), 0, randomBytes(BS));
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
});
