// Starts bench/memoryS3.mjs as a child process (its own core's worth of event loop) and resolves
// its port once it listens, after warming it up.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

export async function startEndpoint(delay = 0) {
  const child = spawn(process.execPath, [join(HERE, 'memoryS3.mjs'), '--delay', String(delay)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      const m = /listening (\d+)/.exec(d.toString());
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', () => reject(new Error('endpoint exited')));
  });
  await warmUp(port);
  return { port, stop: () => child.kill() };
}

/**
 * S3 is never cold, and a fresh endpoint process is: its request handlers run unoptimized until
 * V8 has seen them often. Without this, whichever tool runs first at a delay meets a slower
 * endpoint than the ones after it (about 10 % of a 0 ms read). PUTs, GETs and DELETEs of 256 KiB
 * objects under their own prefix, as many as the tools send in a few seconds.
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
