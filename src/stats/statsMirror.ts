// --statsFileMirror: the statistics file's text, kept in a regular file for readers that cannot
// open the mount (node_exporter's textfile collector, monitoring agents). Each update writes
// FILE.new and renames it over FILE, so a reader sees one whole version or the next. As upstream:
// a mirror file removed since the last update resets the counters, and an error stops mirroring
// (logged once) without touching the mount.

import { promises as fs } from 'node:fs';
import type { Logger } from '../util/log';

export interface StatsMirrorOptions {
  readonly path: string;
  readonly intervalMs: number;
  render(): string;
  reset(): void;
}

export class StatsMirror {
  private timer: NodeJS.Timeout | undefined;
  private written = false;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly options: StatsMirrorOptions,
    private readonly log: Logger,
  ) {}

  /** Writes the first copy now, then every interval. */
  start(): void {
    this.tick();
  }

  private tick(): void {
    this.running = this.update().then(
      () => {
        if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.options.intervalMs);
      },
      (err: unknown) => {
        this.stopped = true;
        this.log.error(`stats file mirror ${this.options.path}: ${(err as Error).message} (mirroring stopped)`);
      },
    );
  }

  private async update(): Promise<void> {
    const { path } = this.options;
    const temp = `${path}.new`;
    await fs.writeFile(temp, this.options.render());
    // Looked for only once the new copy is written, right before the rename: a removal during the
    // write would otherwise be undone by the rename and its reset lost.
    if (this.written && !(await exists(path))) {
      this.options.reset();
      await fs.writeFile(temp, this.options.render());
    }
    await fs.rename(temp, path);
    this.written = true;
  }

  /** Stops the updates; with `final`, writes one last copy (the counters at unmount). */
  async stop({ final = false } = {}): Promise<void> {
    const wasStopped = this.stopped;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (final && !wasStopped)
      await this.update().catch((err: unknown) => this.log.error(`stats file mirror ${this.options.path}: ${(err as Error).message}`));
  }
}

function exists(path: string): Promise<boolean> {
  return fs.stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
  );
}
