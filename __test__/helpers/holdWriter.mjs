// Test helper: a process that writes into a mounted file through its own descriptor and keeps
// it open (no close, no flush), so the blocks stay dirty in the mount's cache until it is killed.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** `writes`: [position, Buffer] pairs; `scratch`: a directory for the data files. */
export async function holdWriter(file, writes, scratch) {
  const sources = [];
  for (const [i, [pos, buf]] of writes.entries()) {
    const src = join(scratch, `hold-${i}.bin`);
    await writeFile(src, buf);
    sources.push([pos, src]);
  }
  const script = `
    const fs = require('fs');
    const fd = fs.openSync(${JSON.stringify(file)}, 'r+');
    for (const [pos, src] of ${JSON.stringify(sources)}) {
      const data = fs.readFileSync(src);
      fs.writeSync(fd, data, 0, data.length, pos);
    }
    process.stdout.write('written\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const written = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => d.toString().includes('written') && resolve());
    child.on('exit', (code) => reject(new Error(`writer exited with ${code}`)));
  });
  return { child, written };
}
