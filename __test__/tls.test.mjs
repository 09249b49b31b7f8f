// --insecure and --cacert against an https endpoint with a self-signed certificate (a TLS
// terminator on loopback in front of s3rver).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startS3Server } from './helpers/s3server.mjs';
import { startTlsFront } from './helpers/tlsFront.mjs';
import { runCli, startMount, workdir, run } from './helpers/ours.mjs';

let server;
let front;
let w;
let certFile;
before(async () => {
  server = await startS3Server({ buckets: ['disk'] });
  w = await workdir('tls');
  front = await startTlsFront(server, w.root);
  certFile = front.certFile;
});
after(async () => {
  front?.close();
  await w?.cleanup();
  await server?.stop();
});

const flags = () => [
  `--baseURL=${front.endpoint}/`, '--ssl',
  `--accessId=${server.accessKeyId}`, `--accessKey=${server.secretAccessKey}`,
  '--size=1m', '--initialRetryPause=50', '--maxRetryPause=100',
];

test('an untrusted certificate is refused', { timeout: 60000 }, async () => {
  const res = await runCli(['-f', ...flags(), 'disk', w.mnt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /cannot reach bucket disk .*self[- ]signed certificate.*\(a private CA\? trust it with --cacert=FILE, or skip the check with --insecure\)/);
});

test('--insecure accepts it; --cacert trusts it', { timeout: 60000 }, async () => {
  for (const extra of [['--insecure'], [`--cacert=${certFile}`]]) {
    const m = await startMount([...flags(), ...extra, 'disk', w.mnt], w.mnt);
    await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'file')}`, 'bs=4096', 'count=1', 'conv=notrunc,fsync', 'status=none']);
    assert.deepEqual(await m.stop(), { code: 0, signal: null }, extra.join(' '));
  }
});
