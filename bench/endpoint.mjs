// Starts bench/memoryS3.mjs as a child process (its own core's worth of event loop) and resolves
// its port once it listens.
import { spawn } from 'node:child_process';
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
  return { port, stop: () => child.kill() };
}
