// Compression and encryption: known answers, byte compatibility with Debian's s3backer 1.5.4 and
// upstream's newest build (when given) in both directions through real mounts, tampering caught,
// wrong passwords refused.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Server, getObject, putObject, listKeys } from './helpers/s3server.mjs';
import { UPSTREAM_BIN, UPSTREAM_BUILDS, NEWEST_UPSTREAM_SKIP, startUpstream, stopUpstream } from './helpers/upstream.mjs';
import { startMount, runCli, workdir, run, s3Flags, isMounted } from './helpers/ours.mjs';

const require = createRequire(import.meta.url);
const { deriveCipherKeys, createBlockCodec } = require('../dist/native/addon.js');
const skip = existsSync(UPSTREAM_BIN) ? false : `${UPSTREAM_BIN} is not installed`;
const SIZE = 4 * 2 ** 20;
const BS = 65536;

let server;
let w;
let passwordFile;
before(async () => {
  server = await startS3Server({ buckets: ['upz', 'upe', 'ourz', 'oure', 'zstd', 'tamper'] });
  w = await workdir('codec');
  passwordFile = join(w.root, 'password');
  await writeFile(passwordFile, 'correct horse battery staple\n');
});
after(async () => {
  await w?.cleanup();
  await server?.stop();
});

test('key and IV derivation match upstream vectors', () => {
  assert.deepEqual(deriveCipherKeys('secret', 'mybucket/', 16), ['3b601fa6cc45f747a0a6b71800c44a1b', '1fae41544d23c71dd58be76991fa4b35']);
});

test('the codec round-trips and refuses what it cannot trust', async () => {
  const codec = createBlockCodec({ blockSize: 4096, compression: 'deflate', cipher: 'AES-128-CBC', password: 'pw', salt: 'b/' });
  const data = Buffer.alloc(4096, 'abc');
  assert.equal(await codec.encode(1, Buffer.alloc(4096)), null, 'zero blocks are not stored');
  const e = await codec.encode(1, data);
  assert.equal(e.contentEncoding, 'deflate, encrypt-AES-128-CBC');
  assert.match(e.hmac, /^[0-9a-f]{40}$/);
  assert.ok((await codec.decode(1, e.body, e.contentEncoding, `"${e.hmac}"`)).equals(data));
  const tampered = Buffer.from(e.body);
  tampered[0] ^= 1;
  await assert.rejects(codec.decode(1, tampered, e.contentEncoding, e.hmac), /HMAC mismatch/);
  // An encoding nobody wrote is refused, never passed through as data.
  await assert.rejects(
    createBlockCodec({ blockSize: 4096, compression: 'deflate' }).decode(1, Buffer.from('abcd'), 'x-unknown', null),
    /x-unknown/,
  );
  await assert.rejects(codec.decode(1, Buffer.from('abcd'), 'deflate', null), /not encrypted, but encryption is configured/);
  assert.throws(() => createBlockCodec({ blockSize: 4096, cipher: 'DES-CBC', password: 'x' }), /not supported/);
});

/** Random data in a few places, zeros elsewhere: compressible and not. */
function pattern() {
  const model = Buffer.alloc(SIZE);
  randomBytes(300 * 1024).copy(model, 0);
  model.fill('s3backer ', 1 << 20, 2 << 20);
  randomBytes(64 * 1024).copy(model, SIZE - 64 * 1024);
  return model;
}

async function writeModel(file, model) {
  const src = join(w.root, 'model.bin');
  await writeFile(src, model);
  await run('dd', [`if=${src}`, `of=${file}`, 'bs=64k', 'conv=notrunc,fsync', 'status=none']);
}

for (const upstream of UPSTREAM_BUILDS) {
  // A prefix per build: the salt (bucket/prefix) and the keys stay apart.
  const tag = upstream.bin === UPSTREAM_BIN ? 'debian' : 'newest';
  for (const [name, flags] of [
    ['--compress', ['--compress']],
    ['--encrypt --passwordFile', ['--encrypt', null]],
  ]) {
    const bucketSuffix = name === '--compress' ? 'z' : 'e';
    const args = () => [`--prefix=${tag}/`, ...flags.map((f) => f ?? `--passwordFile=${passwordFile}`)];

    test(`${name}: a bucket ${upstream.name} wrote reads back identically through ours`, { skip, timeout: 300000 }, async () => {
      const bucket = `up${bucketSuffix}`;
      // Suffixed sizes: upstream's newest refuses a plain number of bytes.
      const up = startUpstream(server, bucket, w.mnt, ['--blockSize=64k', '--size=4m', ...args()], { bin: upstream.bin });
      await up.ready;
      const model = pattern();
      await writeModel(join(w.mnt, 'file'), model);
      assert.equal((await stopUpstream(up)).code, 0);
      const stored = await getObject(server, bucket, `${tag}/00000010`);
      assert.match(stored.contentEncoding, name === '--compress' ? /^deflate$/ : /^deflate, encrypt-AES-128-CBC$/);

      const m = await startMount([...s3Flags(server), ...args(), '--readOnly', bucket, w.mnt], w.mnt);
      const read = await readFile(join(w.mnt, 'file'));
      assert.ok(read.equals(model), 'identical through ours');
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
    });

    test(`${name}: a bucket ours wrote reads back identically through ${upstream.name}`, { skip, timeout: 300000 }, async () => {
      const bucket = `our${bucketSuffix}`;
      const m = await startMount([...s3Flags(server), '--blockSize=64k', `--size=${SIZE}`, ...args(), bucket, w.mnt], w.mnt);
      const model = pattern();
      await writeModel(join(w.mnt, 'file'), model);
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
      const stored = await getObject(server, bucket, `${tag}/00000010`);
      assert.equal(stored.contentEncoding, name === '--compress' ? 'deflate' : 'deflate, encrypt-AES-128-CBC');
      assert.ok(stored.body.length < BS / 4, 'the repeated text compressed');
      if (name !== '--compress') assert.match(stored.metadata['s3backer-hmac'], /^"[0-9a-f]{40}"$/);

      const up = startUpstream(server, bucket, w.mnt, [...args(), '--readOnly'], { bin: upstream.bin });
      await up.ready;
      const read = await readFile(join(w.mnt, 'file'));
      assert.ok(read.equals(model), 'identical through upstream');
      assert.equal((await stopUpstream(up)).code, 0);
    });
  }
}
if (NEWEST_UPSTREAM_SKIP) test('compressed and encrypted buckets both ways with upstream newest', { skip: NEWEST_UPSTREAM_SKIP }, () => {});

test('--compress=zstd round-trips; a later mount without --compress still reads it', { timeout: 120000 }, async () => {
  let m = await startMount([...s3Flags(server), '--blockSize=64k', '--size=1m', '--compress=zstd', 'zstd', w.mnt], w.mnt);
  const data = Buffer.alloc(BS, 'zstd! ');
  await writeModel(join(w.mnt, 'file'), data);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  const stored = await getObject(server, 'zstd', '00000000');
  assert.equal(stored.contentEncoding, 'zstd');
  assert.equal(stored.body.readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
  m = await startMount([...s3Flags(server), 'zstd', w.mnt], w.mnt);
  assert.ok((await readFile(join(w.mnt, 'file'))).subarray(0, BS).equals(data));
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
});

test('a tampered encrypted block reads as an I/O error; a wrong password is refused at mount', { timeout: 120000 }, async () => {
  const enc = [`--passwordFile=${passwordFile}`, '--encrypt'];
  let m = await startMount([...s3Flags(server), '--blockSize=64k', '--size=1m', ...enc, 'tamper', w.mnt], w.mnt);
  await writeModel(join(w.mnt, 'file'), randomBytes(2 * BS));
  assert.deepEqual(await m.stop(), { code: 0, signal: null });

  const victim = await getObject(server, 'tamper', '00000001');
  const flipped = Buffer.from(victim.body);
  flipped[100] ^= 0x40;
  await putObject(server, 'tamper', '00000001', flipped, { contentEncoding: victim.contentEncoding, metadata: victim.metadata });
  m = await startMount([...s3Flags(server), ...enc, '--readOnly', 'tamper', w.mnt], w.mnt);
  const dd = await run('dd', [`if=${join(w.mnt, 'file')}`, 'of=/dev/null', 'bs=64k', 'skip=1', 'count=1', 'iflag=direct']).catch((e) => e);
  assert.match(dd.stderr, /Input\/output error/);
  assert.match(m.stderr(), /block 1: HMAC mismatch/);
  assert.match(await readFile(join(w.mnt, 'stats'), 'utf8'), /^http_mismatch\s+[1-9]/m, 'counted');
  assert.deepEqual(await m.stop(), { code: 0, signal: null });

  const wrong = join(w.root, 'wrong');
  await writeFile(wrong, 'not the password\n');
  const res = await runCli(['-f', ...s3Flags(server), '--encrypt', `--passwordFile=${wrong}`, 'tamper', w.mnt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /wrong password: stored block 00000000 does not authenticate/);
  assert.equal(await isMounted(w.mnt), false);
  const keys = await listKeys(server, 'tamper');
  assert.ok(!keys.includes('s3backer-mounted'), 'no mounted flag left');
});
