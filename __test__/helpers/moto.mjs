// Test helper: moto's S3 server (moto[server] 5.2.5 from PyPI, installed by scripts/setup.sh into
// .cache/moto) on loopback, in a child process. Unlike s3rver it honours conditional writes:
// a second PUT with If-None-Match: * and a PUT or DELETE with a stale If-Match get 412, and an
// If-Match on a missing key 404 (checked against 5.2.5 by hand; see the flag tests).
//
//   const server = await startMoto({ buckets: ['disk'] });
//   ... s3Flags(server), getObject(server, 'disk', key) (s3server.mjs's helpers take it too) ...
//   await server.stop();
//
// What it does not do: its check and its write are not one atomic step (two threads could both
// pass an If-None-Match in theory; 400 rounds of two simultaneous PUTs never did), and it keeps
// everything in memory, so a stopped server's buckets are gone.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { REPO, freePort, workdir } from './ours.mjs';
import { startRecordingProxy } from './recordingProxy.mjs';
import { makeClient } from './s3server.mjs';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

function findMoto() {
  const candidates = [process.env.MOTO_SERVER_BIN, join(REPO, '.cache', 'moto', 'bin', 'moto_server')];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return execFileSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** moto_server's path, or undefined (the tests that need it skip). */
export const MOTO_BIN = findMoto();
export const MOTO_SKIP = MOTO_BIN ? false : 'moto_server not found: run scripts/setup.sh (installs moto[server]==5.2.5 into .cache/moto)';

const listening = (port) =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

/** Starts moto_server on a free port and creates the buckets (names of 3+ characters). */
export async function startMoto({ buckets = ['disk'] } = {}) {
  if (!MOTO_BIN) throw new Error(MOTO_SKIP);
  const port = await freePort();
  // A watchdog shell ends moto when this process goes away, however it ends.
  const script =
    '"$1" -H 127.0.0.1 -p "$2" & m=$!; while kill -0 "$3" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null; wait $m';
  const child = spawn('sh', ['-c', script, 'moto', MOTO_BIN, String(port), String(process.pid)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true, // its own process group: stop() ends the shell and moto together
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`moto_server did not start on port ${port}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.unref();
  child.stderr.unref?.();
  let client;
  const server = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    accessKeyId: 'testing',
    secretAccessKey: 'testing',
    region: 'us-east-1',
    buckets: [...buckets],
    get stderr() {
      return stderr;
    },
    client() {
      client ??= makeClient(server);
      return client;
    },
    async createBucket(name) {
      const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
      await server.client().send(new CreateBucketCommand({ Bucket: name }));
    },
    async stop() {
      client?.destroy();
      client = undefined;
      await stop();
    },
  };
  try {
    for (const b of buckets) await server.createBucket(b);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** Flags for a 1 MiB disk under `prefix` in bucket "disk" on moto, reached at `endpoint` (moto itself, or the proxy in front). */
export const motoDiskFlags = (endpoint, prefix) => [
  `--baseURL=${endpoint}/`,
  '--accessId=testing',
  '--accessKey=testing',
  `--prefix=${prefix}`,
  '--size=1m',
];

/**
 * Registers before/after hooks for a test file: two work directories (for two mounts side by side)
 * and, when moto is there, its server with bucket "disk" behind a recording proxy (so tests see
 * the conditional headers and can hold answers back). The returned object's w1, w2, server and
 * proxy are set once the before hook ran.
 */
export function useMotoBehindProxy(name, { before, after }) {
  const env = {};
  before(async () => {
    env.w1 = await workdir(`${name}-a`);
    env.w2 = await workdir(`${name}-b`);
    if (MOTO_SKIP) return;
    env.server = await startMoto({ buckets: ['disk'] });
    env.proxy = await startRecordingProxy({ target: env.server });
  });
  after(async () => {
    await env.w1?.cleanup();
    await env.w2?.cleanup();
    await env.proxy?.stop();
    await env.server?.stop();
  });
  return env;
}
