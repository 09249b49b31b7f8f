'use strict';
// Child-process runner for s3rver 3.7.1, started by __test__/helpers/s3server.mjs as
//   node --openssl-legacy-provider s3rver-runner.cjs '<json config>'
// (--openssl-legacy-provider: s3rver encrypts its ListObjectsV2 continuation tokens with a
// cipher OpenSSL 3 only has in the legacy provider; without it truncated listings answer 500.)
//
// Config: { dir, port, address, buckets: [names], ppid }.
// Reports { type: 'listening', port } (or { type: 'error', message }) over the IPC channel.
// Exits when the IPC channel closes or the parent process disappears, so a crashed test
// run never leaves a server behind.

const fs = require('fs');
const S3rver = require('s3rver');

const config = JSON.parse(process.argv[2] || '{}');
const ppid = config.ppid || process.ppid;

function send(msg) {
  if (process.send && process.connected) process.send(msg);
}

function die(code) {
  // Do not wait for a graceful close: keep-alive sockets could hold it open.
  process.exit(code);
}

// Orphaned (parent gone without calling stop()): also remove the store directory.
function orphaned() {
  try {
    if (config.dir) fs.rmSync(config.dir, { recursive: true, force: true });
  } catch {
    // best effort
  }
  die(0);
}

process.on('disconnect', orphaned);
process.on('SIGTERM', () => die(0));
process.on('SIGINT', () => die(0));

const watchdog = setInterval(() => {
  try {
    process.kill(ppid, 0);
  } catch {
    orphaned();
  }
}, 500);
watchdog.unref();

async function main() {
  const server = new S3rver({
    address: config.address || '127.0.0.1',
    port: config.port || 0,
    directory: config.dir,
    silent: true,
    configureBuckets: (config.buckets || []).map((name) => ({ name })),
  });
  const addr = await server.run();
  send({ type: 'listening', port: addr.port, address: addr.address });
}

main().catch((err) => {
  send({ type: 'error', message: String((err && err.stack) || err) });
  // give the message a moment to be flushed through the channel
  setTimeout(() => die(1), 100);
});
