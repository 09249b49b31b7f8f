// Whether the command's arguments look like a mount that goes to the background, guessed from
// the raw arguments before anything else loads: main.ts then starts the serving process ahead
// (daemonPrestart.ts). No imports, so that a foreground mount, `--help` or `--version` pays for
// nothing more than this file (loading the prestart's modules took about 3.6 ms of every start).

/** Set in the serving process a background mount starts (daemon.ts). */
export const DAEMON_ENV = 'S3BACKER_DAEMON_CHILD';

// The flags whose handling the serving process cannot take over unseen: other modes, and a log
// file, which must be the child's stderr from its start.
const NOT_AHEAD = new Set(['help', 'version', 'erase', 'reset-mounted-flag', 'logFile', 'configFile']);

/**
 * A cheap guess from the raw arguments, before they are parsed: a mount that goes to the
 * background. A wrong guess costs only the time of a start; the parsed flags decide.
 */
export function looksLikeBackgroundMount(argv: readonly string[]): boolean {
  if (argv[0] === 'cache') return false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-o') {
      const items = (argv[++i] ?? '').split(',');
      if (items.some((item) => NOT_AHEAD.has(item.split('=')[0] ?? ''))) return false;
    } else if (arg === '--') return false;
    else if (arg.startsWith('--')) {
      if (NOT_AHEAD.has(arg.slice(2).split('=')[0] ?? '')) return false;
    } else if (arg.startsWith('-') && arg !== '-s') return false; // -f, -d, -h, -v, -F, combined
  }
  return true;
}

/** A serving process should be started ahead: not inside one, and the arguments say background. */
export function wantsPrestart(argv: readonly string[]): boolean {
  return process.env[DAEMON_ENV] === undefined && looksLikeBackgroundMount(argv);
}
