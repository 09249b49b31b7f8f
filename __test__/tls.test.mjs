// --insecure and --cacert against an https endpoint with a self-signed certificate (a TLS
// terminator on loopback in front of s3rver).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import * as net from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server } from './helpers/s3server.mjs';
import { runCli, startMount, workdir, run } from './helpers/ours.mjs';

let server;
let proxy;
let w;
let certFile;
before(async () => {
  server = await startS3Server({ buckets: ['disk'] });
  w = await workdir('tls');
  certFile = join(w.root, 'cert.pem');
  const keyFile = join(w.root, 'key.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  proxy = tls.createServer({ key: await readFile(keyFile), cert: await readFile(certFile) }, (socket) => {
    const upstream = net.connect(server.port, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
});
after(async () => {
  proxy?.close();
  await w?.cleanup();
  await server?.stop();
});

const flags = () => [
  `--baseURL=https://127.0.0.1:${proxy.address().port}/`, '--ssl',
  `--accessId=${server.accessKeyId}`, `--accessKey=${server.secretAccessKey}`,
  '--size=1m', '--initialRetryPause=50', '--maxRetryPause=100',
];

test('an untrusted certificate is refused', { timeout: 60000 }, async () => {
  const res = await runCli(['-f', ...flags(), 'disk', w.mnt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /cannot reach bucket disk .*self[- ]signed certificate/);
});

test('--insecure accepts it; --cacert trusts it', { timeout: 60000 }, async () => {
  for (const extra of [['--insecure'], [`--cacert=${certFile}`]]) {
    const m = await startMount([...flags(), ...extra, 'disk', w.mnt], w.mnt);
    await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'file')}`, 'bs=4096', 'count=1', 'conv=notrunc,fsync', 'status=none']);
    assert.deepEqual(await m.stop(), { code: 0, signal: null }, extra.join(' '));
  }
});
