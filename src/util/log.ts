// Logging to stderr with levels; --debug turns on debug lines, --quiet drops info lines.

import { writeAboveProgress } from './progress';

export type Level = 'error' | 'warn' | 'info' | 'debug';

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  /** --debug-http lines: always shown when that flag asked for them. */
  http(msg: string): void;
}

export function createLogger(opts: { debug: boolean; quiet: boolean; write?: (line: string) => void }): Logger {
  // On a terminal a progress line may be drawn on stderr: log lines go above it, not into it.
  const write = opts.write ?? ((line: string) => writeAboveProgress(process.stderr, line));
  const emit = (level: Level, msg: string): void => write(`s3backer: ${level === 'info' ? '' : `${level}: `}${msg}\n`);
  return {
    error: (msg) => emit('error', msg),
    warn: (msg) => emit('warn', msg),
    info: (msg) => {
      if (!opts.quiet) emit('info', msg);
    },
    debug: (msg) => {
      if (opts.debug) emit('debug', msg);
    },
    http: (msg) => write(`s3backer: http: ${msg}\n`),
  };
}

export const silentLogger: Logger = { error() {}, warn() {}, info() {}, debug() {}, http() {} };
