// The statistics file: each layer contributes upstream's counters under upstream's names and in
// its units (`%-28s value` lines, in upstream's order), then the lines of ours that upstream does
// not have, after all of upstream's: scripts written for upstream's file keep working.

export type StatValue = number | string;
export type StatLine = readonly [string, StatValue];

export interface StatsSource {
  /** Upstream's lines, as upstream prints them. */
  statsLines(): readonly StatLine[];
  /** Lines of ours, printed after every source's upstream lines. */
  extraStatsLines?(): readonly StatLine[];
  resetStats(): void;
}

/** Every line, in the file's order. */
export function allStatsLines(sources: readonly StatsSource[]): StatLine[] {
  const lines = sources.flatMap((s) => s.statsLines());
  // Upstream counts failed allocations here; Node ends the process on one, so none is ever counted.
  lines.push(['out_of_memory_errors', 0]);
  for (const s of sources) lines.push(...(s.extraStatsLines?.() ?? []));
  return lines;
}

export function renderStats(sources: readonly StatsSource[]): string {
  let text = '';
  for (const [name, value] of allStatsLines(sources)) text += `${name.padEnd(28)} ${value}\n`;
  return text;
}

/** Upstream's ratios: 8 decimals ("%.8f") unless it says otherwise, 0 when there is nothing to divide. */
export function ratio(part: number, whole: number, decimals = 8): string {
  return (whole === 0 ? 0 : part / whole).toFixed(decimals);
}

/** A count of blocks, as upstream writes it ("%u blocks"). */
export function blocks(n: number): string {
  return `${n} blocks`;
}

/** An average time in seconds ("%.3f sec"). */
export function seconds(totalMs: number, count: number): string {
  return `${count === 0 ? '0.000' : (totalMs / count / 1000).toFixed(3)} sec`;
}

/** A total time in seconds with milliseconds ("%ju.%03u sec"). */
export function totalSeconds(ms: number): string {
  const whole = Math.floor(ms);
  return `${Math.floor(whole / 1000)}.${String(whole % 1000).padStart(3, '0')} sec`;
}
