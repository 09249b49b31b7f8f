// What firstByte.mjs and idleReuse.mjs share: one variant mounted in the foreground against the
// endpoint (1 GiB of 256 KiB blocks under a prefix of its own), found once its file is there,
// 4 KiB reads from this process (no command started in between), the unmount, and medians.
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { storeFlags } from './endpoint.mjs';
import { toolEnv } from './variants.mjs';

export const BLOCK_SIZE = 256 * 1024;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Starts the variant on `mnt`; resolves once the file is there (looked for every `pollMs`), with
 * the ms that took and a promise of its exit code (wrapped: a promise returned would be awaited).
 */
export async function mountVariant(v, { endpoint, mnt, prefix, env = {}, pollMs = 1 }) {
  const t0 = performance.now();
  const argv = [...v.command.slice(1), '-f', ...storeFlags(endpoint), '--accessId=bench', '--accessKey=bench'];
  argv.push(`--prefix=${prefix}`, `--blockSize=${BLOCK_SIZE / 1024}k`, '--size=1g', ...v.flags, 'bench', mnt);
  const child = spawn(v.command[0], argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...toolEnv, ...env } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((r) => child.on('exit', (code) => r(code)));
  for (;;) {
    try {
      statSync(join(mnt, 'file'));
      return { mountedMs: performance.now() - t0, exited };
    } catch {
      if (performance.now() - t0 > 30000 || child.exitCode !== null) throw new Error(`${v.name} did not mount: ${stderr.trim()}`);
      await sleep(pollMs);
    }
  }
}

/** Reads 4 KiB at the block's start through the mounted file; the ms the read took. */
export function read4k(mnt, block) {
  const fd = openSync(join(mnt, 'file'), 'r');
  try {
    const t = performance.now();
    readSync(fd, Buffer.alloc(4096), 0, 4096, block * BLOCK_SIZE);
    return performance.now() - t;
  } finally {
    closeSync(fd);
  }
}

/** Unmounts and waits for the variant to exit, which must be with 0. */
export async function unmount(mnt, exited, name) {
  execFileSync('umount', [mnt]);
  const code = await exited;
  if (code !== 0) throw new Error(`${name} exited with ${code}`);
}

/** Unmounts whatever is left on `mnt` after a failure. */
export function unmountQuietly(mnt) {
  try {
    execFileSync('umount', [mnt], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
}
