// The cache file's format on our side: a file an earlier version of ours wrote ("S3BC") is
// converted at mount, dirty blocks included; --blockCacheFileAdvise keeps the file's pages out
// of memory after use (checked with fincore), in both its --flag and -o forms.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server, getObject, putObject } from './helpers/s3server.mjs';
import { startMount, runCli, workdir, run, s3Flags, isMounted } from './helpers/ours.mjs';

const env = useS3Server('cachefile-format', { before, after, workdir });
const BS = 65536;
const md5 = (b) => createHash('md5').update(b).digest();

/** A cache file as earlier versions of ours laid it out (little-endian, 4096-byte header). */
function legacyFile(numSlots, token, slots) {
  const header = Buffer.alloc(4096);
  [0x53334243, 1, BS, numSlots, token].forEach((w, i) => header.writeUInt32LE(w, i * 4));
  let h = 0x811c9dc5;
  for (const b of header.subarray(0, 20)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  header.writeUInt32LE(h, 20);
  const dataAt = Math.ceil((4096 + numSlots * 32) / 4096) * 4096;
  const file = Buffer.alloc(dataAt + numSlots * BS);
  header.copy(file);
  for (const [slot, { block, dirty, etag, data }] of slots.entries()) {
    const e = 4096 + slot * 32;
    file.writeUInt32LE(block, e);
    file.writeUInt32LE(dirty ? 3 : 1, e + 4);
    etag?.copy(file, e + 8);
    data.copy(file, dataAt + slot * BS);
  }
  return file;
}

test("an earlier version's cache file is converted at mount, its dirty block recovered", { timeout: 120000 }, async () => {
  const flags = [...s3Flags(env.server), '--prefix=l/', '--blockSize=64k', '--size=1m', '--readAhead=0'];
  const a = randomBytes(BS);
  const b = randomBytes(BS);
  await putObject(env.server, 'disk', 'l/00000000', a, { metadata: { 's3backer-blocksize': '65536', 's3backer-filesize': '1048576' } });
  // The flag that earlier mount left when it was killed, carrying the file's token.
  await putObject(env.server, 'disk', 'l/s3backer-mounted', Buffer.from('crashed\n'), { metadata: { 's3backer-mount-token': '00abc123' } });
  const cf = join(env.w.root, 'legacy.cache');
  await writeFile(
    cf,
    legacyFile(4, 0xabc123, [
      { block: 0, etag: md5(a), data: a },
      { block: 1, dirty: true, data: b },
      { block: 2, etag: md5(Buffer.alloc(BS)), data: Buffer.alloc(BS) }, // absent: the MD5 of zeros it recorded
    ]),
  );
  const before = JSON.parse((await runCli(['cache', 'inspect', '--json', cf])).stdout);
  assert.deepEqual([before.format, before.dirty, before.clean, before.mountToken], ['s3bc', 1, 2, '00abc123']);

  const m = await startMount(
    [...flags, '--blockCacheSize=4', `--blockCacheFile=${cf}`, '--blockCacheRecoverDirtyBlocks', 'disk', env.w.mnt],
    env.w.mnt,
  );
  assert.match(
    m.stderr(),
    /converted from the format of earlier versions of this s3backer to upstream's, keeping 3 of 3 blocks \(1 dirty\)/,
  );
  assert.match(m.stderr(), /taking over/);
  assert.match(m.stderr(), /2 clean blocks reused \(2 verified, 0 refreshed\), 1 dirty blocks to upload/);
  assert.deepEqual(await m.stop(), { code: 0, signal: null });
  assert.ok((await getObject(env.server, 'disk', 'l/00000001'))?.body.equals(b), 'the dirty block reached S3');
  const after = JSON.parse((await runCli(['cache', 'inspect', '--json', '--blocks', cf])).stdout);
  assert.deepEqual([after.format, after.headerSize, after.entrySize, after.signature], ['dcache', 64, 24, 'e496f17b']);
  assert.equal(after.entries.find((e) => e.block === 2).etag, '0'.repeat(32), 'an absent block now has the zero ETag');
});

/** Resident bytes of a file in the page cache, as util-linux's fincore reports them. */
async function resident(file) {
  const { stdout } = await run('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return Number(stdout.trim());
}

test(
  '--blockCacheFileAdvise keeps the cache file out of memory after reads (both forms); refused without a file',
  { timeout: 180000 },
  async (t) => {
    const base = [...s3Flags(env.server), '--prefix=fa/', '--blockSize=64k', '--size=2m', '--readAhead=0'];
    const data = randomBytes(32 * BS);
    const src = join(env.w.root, 'advise.bin');
    await writeFile(src, data);
    let m = await startMount([...base, '--blockCacheSize=0', 'disk', env.w.mnt], env.w.mnt);
    await run('dd', [`if=${src}`, `of=${join(env.w.mnt, 'file')}`, 'bs=64k', 'conv=notrunc,fsync', 'status=none']);
    assert.deepEqual(await m.stop(), { code: 0, signal: null });

    const residentAfterRead = async (name, extra) => {
      const cf = join(env.w.root, `${name}.cache`);
      m = await startMount([...base, '--blockCacheSize=32', `--blockCacheFile=${cf}`, ...extra, 'disk', env.w.mnt], env.w.mnt);
      // Twice: the first pass fills the slots (from S3), the second is served from them.
      for (let pass = 0; pass < 2; pass++) {
        await run('dd', [`if=${join(env.w.mnt, 'file')}`, 'of=/dev/null', 'bs=64k', 'iflag=direct', 'status=none']);
      }
      assert.deepEqual(await m.stop(), { code: 0, signal: null });
      assert.equal(JSON.parse((await runCli(['cache', 'inspect', '--json', cf])).stdout).clean, 32);
      return resident(cf);
    };
    const plain = await residentAfterRead('plain', []);
    const flag = await residentAfterRead('flag', ['--blockCacheFileAdvise']);
    const option = await residentAfterRead('option', ['-o', 'blockCacheFileAdvise']);
    t.diagnostic(
      `resident bytes of a 32-slot cache file after two passes: ${plain} plain, ${flag} with --blockCacheFileAdvise, ${option} with -o`,
    );
    assert.ok(plain >= 30 * BS, `without the flag the slots stay in memory (${plain} bytes resident)`);
    assert.ok(flag <= 4 * BS, `with --blockCacheFileAdvise they are dropped (${flag} bytes resident)`);
    assert.ok(option <= 4 * BS, `with -o blockCacheFileAdvise too (${option} bytes resident)`);

    const res = await runCli(['-f', ...base, '--blockCacheFileAdvise', 'disk', env.w.mnt]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /--blockCacheFileAdvise needs --blockCacheFile/);
    assert.equal(await isMounted(env.w.mnt), false);
  },
);
