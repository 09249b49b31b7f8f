// Some virtual machines (this one: free page reporting and DAMON's pageout) hand memory the guest
// has freed back to the host, and the next touch of such a page waits for the host to map it in
// again: 0.5 to 2 GB/s here, against ~10 GB/s for memory the host still backs. A workload that
// fills the page cache (ext4's, the FUSE file's) then runs at the host's pace, not the tool's,
// and figures swing with whatever ran minutes before. Touching memory just before a timed
// workload and freeing it leaves backed pages on the free lists for the workload to take.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Touches `mib` MiB in a child process and frees it; resolves the touch's speed in MB/s. */
export async function warmMemory(mib) {
  const script = `
    const t = performance.now();
    const chunks = [];
    for (let left = ${mib}; left > 0; left -= 256) chunks.push(Buffer.allocUnsafeSlow(Math.min(left, 256) * 1048576).fill(1));
    console.log(${mib} * 1.048576 / ((performance.now() - t) / 1000));`;
  const { stdout } = await run(process.execPath, ['-e', script]);
  return Number(stdout.trim());
}
