// Files that hold secrets should be open to their owner alone (as ssh insists for its keys): a
// warning, not a refusal, since upstream accepted such files and existing setups rely on that.

import { statSync } from 'node:fs';

/** One warning per existing file that its group or others can read or change. */
export function secretFileWarnings(files: ReadonlyArray<readonly [file: string | undefined, what: string]>): string[] {
  const warnings: string[] = [];
  for (const [file, what] of files) {
    if (file === undefined) continue;
    let mode: number;
    try {
      mode = statSync(file).mode;
    } catch {
      continue; // missing files are the caller's error to report
    }
    if ((mode & 0o077) !== 0) {
      const octal = (mode & 0o777).toString(8).padStart(4, '0');
      warnings.push(`${what} ${file} is open to other users (mode ${octal}); chmod 600 it`);
    }
  }
  return warnings;
}
