// Starts the in-memory S3 stand-in (bench/endpoint/, Rust: a thread per connection) as a child
// process, built first if it is missing or older than its source, and resolves its port once it
// listens, after warming it up. S3 costs its clients' machine no CPU; the Node endpoint this
// replaced spent 0.4-0.9 ms of CPU per 256 KiB PUT (its garbage collector, copies) on the same
// two cores as the tools, and capped how fast a tool overlapping its uploads with writes could go.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The endpoint's binary, built (cargo does nothing when it is up to date). */
export function endpointBinary() {
  execFileSync('cargo', ['build', '--release', '--quiet', '-p', 's3backer-bench-endpoint'], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return join(REPO, 'target', 'release', 'bench-s3');
}

/**
 * Starts the endpoint at `delay` ms per request. With `tls`, the tools reach it over HTTPS (as
 * they reach S3) on a port of its own, trusting the self-signed certificate it wrote; the
 * bench's own requests (counts, listings, the warm-up) keep to plain HTTP. `connectDelay` ms hold
 * each new connection before it is served (a distant S3's handshake round trips); `idleCloseMs`
 * closes connections idle that long (S3 closes them after about 20 s).
 */
export async function startEndpoint(delay = 0, { warm = true, tls = false, connectDelay = 0, idleCloseMs = 0 } = {}) {
  const caFile = tls ? join(mkdtempSync(join(tmpdir(), 'bench-s3-')), 'ca.pem') : undefined;
  const args = ['--delay', String(delay), ...(caFile ? ['--tls', caFile] : [])];
  if (connectDelay > 0) args.push('--connect-delay', String(connectDelay));
  if (idleCloseMs > 0) args.push('--idle-close', String(idleCloseMs));
  const child = spawn(endpointBinary(), args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const ports = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)(?: tls (\d+))?/.exec(d.toString());
      if (m) resolve({ port: Number(m[1]), tlsPort: m[2] ? Number(m[2]) : undefined });
    });
    child.on('error', reject);
    child.on('exit', () => reject(new Error('endpoint exited')));
  });
  if (warm) await warmUp(ports.port);
  return { ...ports, caFile, stop: () => child.kill() };
}

/** The flags that point a tool (ours, upstream's, Debian's: the same flags) at the endpoint. */
export const storeFlags = (endpoint) =>
  endpoint.tlsPort
    ? [`--baseURL=https://127.0.0.1:${endpoint.tlsPort}/`, `--cacert=${endpoint.caFile}`]
    : [`--baseURL=http://127.0.0.1:${endpoint.port}/`];

/**
 * S3 is never cold, and a fresh endpoint process is: its heap has yet to grow to hold the
 * objects, and its first allocations fault in fresh pages (with the Node endpoint, its handlers
 * also ran unoptimized at first). Without this, whichever tool runs first at a delay would meet a
 * slower endpoint than the ones after it. PUTs, GETs and DELETEs of 256 KiB objects under their
 * own prefix, as many as the tools send in a few seconds.
 */
async function warmUp(port, { count = 1500, inflight = 32, size = 256 * 1024 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
  const body = Buffer.alloc(size, 1);
  const send = (method, i) =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, agent, method, path: `/bench/warmup/${i}` }, (res) => {
        res.on('data', () => {});
        res.on('end', () => (res.statusCode < 300 ? resolve() : reject(new Error(`warm-up ${method}: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(method === 'PUT' ? body : undefined);
    });
  for (const method of ['PUT', 'GET', 'DELETE']) {
    let next = 0;
    const worker = async () => {
      while (next < count) await send(method, next++);
    };
    await Promise.all(Array.from({ length: inflight }, worker));
  }
  agent.destroy();
}
