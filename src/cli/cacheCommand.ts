// `s3backer cache inspect FILE [--json] [--blocks]`.

import { Command, CommanderError } from 'commander';
import { formatCacheReport, inspectCacheFile } from '../tools/inspectCache';

export function runCacheCommand(argv: readonly string[]): number {
  let code = 0;
  const program = new Command('s3backer cache')
    .description('tools for block cache files (--blockCacheFile)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(`s3backer: ${s.replace(/^error: /, '')}`),
    });
  program
    .command('inspect')
    .argument('<file>', 'the cache file')
    .description('show the header and what the slots hold, without changing the file')
    .option('--json', 'print JSON for scripts')
    .option('--blocks', 'also list every used slot')
    .action((file: string, opts: { json?: boolean; blocks?: boolean }) => {
      try {
        const report = inspectCacheFile(file);
        if (opts.json) {
          // The per-slot table only with --blocks (JSON drops the undefined field).
          process.stdout.write(`${JSON.stringify(opts.blocks ? report : { ...report, entries: undefined }, null, 2)}\n`);
        } else process.stdout.write(formatCacheReport(report, { blocks: opts.blocks === true }));
      } catch (err) {
        process.stderr.write(`s3backer: ${(err as Error).message}\n`);
        code = 1;
      }
    });
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
  return code;
}
