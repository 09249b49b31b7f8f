// --insecure, --cacert and the system's CA bundle against an https endpoint with a self-signed
// certificate (a TLS terminator on loopback in front of s3rver).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { systemOnlyCAs } from '../dist/backend/s3/trust.js';
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
  `--baseURL=${front.endpoint}/`,
  '--ssl',
  `--accessId=${server.accessKeyId}`,
  `--accessKey=${server.secretAccessKey}`,
  '--size=1m',
  '--initialRetryPause=50',
  '--maxRetryPause=100',
];

test('an untrusted certificate is refused', { timeout: 60000 }, async () => {
  const res = await runCli(['-f', ...flags(), 'disk', w.mnt]);
  assert.equal(res.code, 1);
  assert.match(
    res.stderr,
    /cannot reach bucket disk .*self[- ]signed certificate.*\(a private CA\? trust it with --cacert=FILE, or skip the check with --insecure\)/,
  );
});

test('--insecure accepts it; --cacert trusts it', { timeout: 60000 }, async () => {
  for (const extra of [['--insecure'], [`--cacert=${certFile}`]]) {
    const m = await startMount([...flags(), ...extra, 'disk', w.mnt], w.mnt);
    await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'file')}`, 'bs=4096', 'count=1', 'conv=notrunc,fsync', 'status=none']);
    assert.deepEqual(await m.stop(), { code: 0, signal: null }, extra.join(' '));
  }
});

test('a CA in the system bundle is trusted without --cacert, as upstream (libcurl) trusts it', { timeout: 60000 }, async () => {
  // The system's bundle with the test CA added, as update-ca-certificates would leave it;
  // SSL_CERT_FILE (OpenSSL's variable) points at it instead of /etc/ssl/certs.
  const bundle = join(w.root, 'system-bundle.pem');
  const system = await readFile('/etc/ssl/certs/ca-certificates.crt', 'utf8').catch(() => '');
  await writeFile(bundle, system + (await readFile(certFile, 'utf8')));
  // Only what Node's own bundle lacks is added (none: no extra TLS context is built at all).
  const extra = systemOnlyCAs({ SSL_CERT_FILE: bundle });
  const squash = (pem) => pem.replace(/\s+/g, '');
  assert.ok(extra.map(squash).includes(squash(await readFile(certFile, 'utf8'))), 'the test CA is taken');
  const bundled = new Set(rootCertificates.map(squash));
  assert.ok(
    extra.every((pem) => !bundled.has(squash(pem))),
    'none that Node already has',
  );
  assert.deepEqual(systemOnlyCAs({ SSL_CERT_FILE: join(w.root, 'no-such-bundle.pem') }), []);
  const m = await startMount([...flags(), 'disk', w.mnt], w.mnt, { env: { ...process.env, SSL_CERT_FILE: bundle } });
  await run('dd', ['if=/dev/urandom', `of=${join(w.mnt, 'file')}`, 'bs=4096', 'count=1', 'conv=notrunc,fsync', 'status=none']);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  // The system's own bundle does not have it: refused, as in the first test.
  const res = await runCli(['-f', ...flags(), 'disk', w.mnt], {
    env: { ...process.env, SSL_CERT_FILE: '/etc/ssl/certs/ca-certificates.crt' },
  });
  assert.equal(res.code, 1);
});

test('blocks read back over TLS are the blocks written (decrypted bytes land in the cache in place)', { timeout: 90000 }, async () => {
  // Several MiB of 256 KiB blocks: each answer arrives in 16 KiB TLS records, the head and the
  // body's first bytes often in one record, and goes straight into its cache slot.
  const source = join(w.root, 'tls-source');
  await run('dd', ['if=/dev/urandom', `of=${source}`, 'bs=1M', 'count=6', 'status=none']);
  const args = [...flags().filter((f) => !f.startsWith('--size=')), '--size=8m', '--blockSize=256k', `--cacert=${certFile}`, 'disk', w.mnt];
  let m = await startMount(['--prefix=inplace/', ...args], w.mnt);
  await run('dd', [`if=${source}`, `of=${join(w.mnt, 'file')}`, 'bs=1M', 'conv=notrunc,fsync', 'status=none']);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  // A fresh mount has nothing cached: every block comes over TLS.
  m = await startMount(['--prefix=inplace/', ...args], w.mnt);
  try {
    const [written, read] = await Promise.all([readFile(source), readFile(join(w.mnt, 'file'))]);
    assert.equal(read.length, 8 << 20);
    assert.ok(read.subarray(0, written.length).equals(written), 'the first 6 MiB are what was written');
    assert.ok(
      read.subarray(written.length).every((b) => b === 0),
      'the rest reads as zeros',
    );
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});
