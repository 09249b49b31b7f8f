// Where the command's log lines go: stderr in the foreground (stamped with the time unless it is
// a terminal), a file with --logFile (stamped), or syslog in the background, through the one
// `logger` process the daemon's stderr is a pipe into (see daemon.ts).

import { closeSync, openSync, writeSync } from 'node:fs';
import { writeAboveProgress } from '../util/progress';
import { ConfigError } from '../errors';

/** Takes a line as the logger makes it: "s3backer: warn: text\n". */
export type LogWrite = (line: string) => void;

const stamp = (line: string): string => `${new Date().toISOString()} ${line}`;

/** Foreground: stderr; a service manager or a redirect gets the time on each line, a terminal does not. */
export function stderrOutput(stream: NodeJS.WriteStream = process.stderr): LogWrite {
  if (stream.isTTY) return (line) => writeAboveProgress(stream, line);
  return (line) => void stream.write(stamp(line));
}

/** Opens --logFile for appending (created 0640), or says clearly why it cannot. */
export function openLogFile(file: string): number {
  try {
    return openSync(file, 'a', 0o640);
  } catch (err) {
    throw new ConfigError(`--logFile: cannot write to ${file}: ${(err as Error).message.replace(/^[A-Z]+: /, '')}`);
  }
}

/** --logFile: each line appended with its time; the file's O_APPEND keeps lines whole beside other writers. */
export function fileOutput(fd: number): LogWrite {
  return (line) => {
    try {
      writeSync(fd, stamp(line));
    } catch {
      // A full disk must not take the mount down with it.
    }
  };
}

export function closeLogFile(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Facility daemon (3), as upstream's syslog(3) calls. */
const DAEMON_FACILITY = 3;
const SEVERITY: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };
const LEVEL = /^s3backer: (?:(error|warn|debug): )?/;

/**
 * Background: each line with its syslog priority in front (`<27>text`), for `logger
 * --prio-prefix` on the other end of stderr; a line of a multi-line message carries its own.
 * Anything else that reaches stderr (a crash's own report) is logged at daemon.err.
 */
export function syslogOutput(stream: { write(text: string): unknown } = process.stderr): LogWrite {
  return (line) => {
    const m = LEVEL.exec(line);
    const priority = DAEMON_FACILITY * 8 + (SEVERITY[m?.[1] ?? 'info'] ?? 6);
    const text = line.slice(m?.[0].length ?? 0).trimEnd();
    stream.write(
      text
        .split('\n')
        .map((l) => `<${priority}>${l}\n`)
        .join(''),
    );
  };
}
