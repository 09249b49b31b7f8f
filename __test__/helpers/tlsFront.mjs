// An https endpoint for the tests: a TLS terminator on loopback in front of an s3rver, with a
// self-signed certificate for 127.0.0.1 made by openssl (its PEM file is there to trust).
//
//   const front = await startTlsFront(server, dir);
//   front.endpoint   // https://127.0.0.1:PORT
//   front.certFile   // the certificate, for --cacert
//   front.close()
import * as tls from 'node:tls';
import * as net from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './ours.mjs';

export async function startTlsFront(server, dir) {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  const front = tls.createServer({ key: await readFile(keyFile), cert: await readFile(certFile) }, (socket) => {
    const upstream = net.connect(server.port, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise((resolve) => front.listen(0, '127.0.0.1', resolve));
  const { port } = front.address();
  return { port, endpoint: `https://127.0.0.1:${port}`, certFile, close: () => front.close() };
}
