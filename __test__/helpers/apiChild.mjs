// Mounts through the programmatic API (require('s3backer').mount) and takes orders on stdin, so a
// test can do file I/O on the mount from another process (the same process would deadlock).
// argv: JSON of the MountOptions. Lines out: "ready <fileSize>", "flushed", "stats <json text>",
// "abandoned <bool>", "closed".
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const api = require('../../dist/index.js');
const out = (line) => process.stdout.write(`${line}\n`);
try {
  const handle = await api.mount(JSON.parse(process.argv[2]));
  const orders = createInterface({ input: process.stdin });
  // No process.exit: once the mount is over and stdin let go, the process must end by itself.
  handle.closed.then(() => {
    out('closed');
    orders.close();
    process.stdin.destroy();
  });
  out(`ready ${handle.geometry.fileSize}`);
  for await (const line of orders) {
    if (line === 'flush') await handle.flush().then(() => out('flushed'));
    else if (line === 'stats') out(`stats ${JSON.stringify(handle.stats())}`);
    else if (line === 'abandon') out(`abandoned ${handle.abandon()}`);
    else if (line === 'unmount') await handle.unmount();
  }
} catch (err) {
  out(`error ${err.name}: ${err.message}`);
  process.exit(1);
}
