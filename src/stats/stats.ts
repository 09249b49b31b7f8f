// The statistics file: each layer contributes upstream-named counters, one `%-28s value` line each.

export type StatValue = number | string;

export interface StatsSource {
  statsLines(): ReadonlyArray<readonly [string, StatValue]>;
  resetStats(): void;
}

export function renderStats(sources: readonly StatsSource[]): string {
  let text = '';
  for (const source of sources) {
    for (const [name, value] of source.statsLines()) text += `${name.padEnd(28)} ${value}\n`;
  }
  return text;
}

export function ratio(part: number, whole: number): string {
  return whole === 0 ? '0.0000' : (part / whole).toFixed(4);
}

export function seconds(totalMs: number, count: number): string {
  return `${count === 0 ? '0.000' : (totalMs / count / 1000).toFixed(3)} sec`;
}
