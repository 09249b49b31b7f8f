// A real forward proxy for the tests: Debian's tinyproxy on loopback, in the foreground with its
// own config, logging each request line so a test can see what went through it.
//
//   const proxy = await startTinyproxy(dir, { user: 'u', password: 'p' });   // auth optional
//   proxy.url            // http://127.0.0.1:PORT
//   await proxy.requests() // ['HEAD http://127.0.0.1:9000/disk/ HTTP/1.1', 'CONNECT 127.0.0.1:8443 HTTP/1.1', ...]
//   await proxy.stop()
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ours.mjs';

const canConnect = (port) =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

export async function startTinyproxy(dir, { user, password } = {}) {
  const port = await freePort();
  const log = join(dir, `tinyproxy-${port}.log`);
  const conf = join(dir, `tinyproxy-${port}.conf`);
  await writeFile(log, '');
  await chmod(log, 0o666); // tinyproxy may drop to nobody once it has its port
  await writeFile(
    conf,
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 60',
      `LogFile "${log}"`,
      'LogLevel Connect',
      'MaxClients 200',
      'Allow 127.0.0.1',
      ...(user === undefined ? [] : [`BasicAuth ${user} ${password}`]),
      '',
    ].join('\n'),
  );
  const child = spawn('tinyproxy', ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 10000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`tinyproxy did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** Every request line the proxy received, in order. */
    async requests() {
      const text = await readFile(log, 'latin1');
      return [...text.matchAll(/Request \(file descriptor \d+\): (.*)$/gm)].map((m) => m[1].trim());
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
