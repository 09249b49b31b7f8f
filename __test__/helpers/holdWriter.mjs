// A process that holds the backed file open after writing to it, so nothing is flushed on close:
// what it wrote stays dirty in the block cache until the mount is killed or the writer exits.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes [position, Buffer] pairs through one descriptor and keeps it open (no close, no flush); `dir` holds the sources. */
export async function holdWriter(dir, file, writes) {
  const sources = [];
  for (const [i, [pos, buf]] of writes.entries()) {
    const src = join(dir, `hold-${i}.bin`);
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
