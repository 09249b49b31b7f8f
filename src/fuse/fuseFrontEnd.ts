// The JS half of the FUSE front end. The Rust session answers the kernel's metadata requests,
// opens and stats-file reads itself, and hands us only what needs the block stack: reads, writes,
// flushes and zeroed ranges of the backed file, and the stats file's text. Each is answered by id.

import { constants } from 'node:os';
import type { FuseRequest, FuseSession, Hits } from '../native/addon';
import type { PartialBlockLayer } from '../layers/partialBlock';
import { errnoFor } from './errno';
import type { Logger } from '../util/log';
import type { FuseRequests, Histogram } from '../stats/latency';

export interface FrontEndHooks {
  renderStats(): string;
  resetStats(): void;
  /** Reads the session answered through the block map (blocks, in order), after the fact. */
  noteHits?(blocks: Uint32Array): void;
  /**
   * Hands the blocks the session wrote through the block map since the last call to the stack
   * (BlockStore.noteWritten). Called after the session's hits are taken, as the session wants.
   * `final`: the front end is closing; the session takes no more writes from then on.
   */
  takeWritten?(final: boolean): void;
  /** Where the durations and sizes of reads and writes of the backed file are counted. */
  readonly requests?: FuseRequests | undefined;
}

/** The part of the native session the front end answers through. */
export type Replies = Pick<FuseSession, 'reply' | 'replyData' | 'replyStats' | 'takeHits'>;

/** Read buffers kept for reuse, at most (the kernel keeps a few reads in flight at once). */
const KEPT_READ_BUFFERS = 8;

export class FuseFrontEnd {
  /** The work of requests not answered yet. */
  private readonly inFlight = new Set<Promise<void>>();
  /**
   * Buffers of answered reads: replyData has copied the bytes out before it returns, so the
   * next read takes the buffer instead of a new one (a cold read would otherwise allocate its
   * every byte, and the collector would chase the garbage).
   */
  private readonly readBuffers: Buffer[] = [];
  private closed = false;

  constructor(
    private readonly data: PartialBlockLayer,
    private readonly hooks: FrontEndHooks,
    private readonly log: Logger,
  ) {}

  /** Starts the work for one request; its answer goes to `replies` when the work is done. */
  handle(replies: Replies, request: FuseRequest): void {
    const { id, offset, length } = request;
    // A detached mount still open somewhere, after its unmount has stored everything: what it
    // sends now could not be stored, so it fails as a gone mount would.
    if (request.op === 'hits') return this.noteHits(replies.takeHits());
    if (this.closed && request.op !== 'stats') return replies.reply(id, -constants.errno.ENOTCONN);
    switch (request.op) {
      case 'read': {
        this.hooks.requests?.readBytes.observe(length);
        const kept = this.readBuffers.pop();
        const buf = kept !== undefined && kept.length >= length ? kept : Buffer.allocUnsafeSlow(length);
        this.answer(
          `read of ${length} bytes at ${offset}`,
          this.hooks.requests?.read,
          () => this.data.read(offset, buf.subarray(0, length)),
          replies,
          id,
          (n) => {
            replies.replyData(id, buf.subarray(0, n));
            // Only after a success: a failed read's other blocks may still be copying into it.
            if (this.readBuffers.length < KEPT_READ_BUFFERS) this.readBuffers.push(buf);
          },
        );
        return;
      }
      case 'write': {
        const data = request.data ?? Buffer.alloc(0);
        this.hooks.requests?.writeBytes.observe(data.length);
        this.answer(
          `write of ${data.length} bytes at ${offset}`,
          this.hooks.requests?.write,
          () => this.data.write(offset, data),
          replies,
          id,
          (n) => replies.reply(id, n),
        );
        return;
      }
      case 'flush':
        this.answer(
          'flush',
          undefined,
          () => this.data.flush().then(() => 0),
          replies,
          id,
          () => replies.reply(id, 0),
        );
        return;
      case 'zero':
        this.answer(
          `zeroing ${length} bytes at ${offset}`,
          undefined,
          () => this.data.zero(offset, length).then(() => 0),
          replies,
          id,
          () => replies.reply(id, 0),
        );
        return;
      case 'stats':
        replies.replyStats(id, Buffer.from(this.hooks.renderStats()));
        return;
      case 'resetStats':
        this.hooks.resetStats();
        replies.reply(id, 0);
        return;
      default:
        this.log.error(`FUSE: unknown request "${request.op}"`);
        replies.reply(id, -errnoFor(undefined));
    }
  }

  /**
   * Reads and writes the session answered itself: counted as those answered here are, then the
   * stack is told, before any request that came after them is handled here.
   */
  private noteHits({ blocks, reads, writes }: Hits): void {
    this.hooks.takeWritten?.(false);
    const requests = this.hooks.requests;
    if (requests) {
      for (let i = 0; i + 1 < reads.length; i += 2) {
        requests.sessionReadBytes.observe(reads[i] as number);
        requests.sessionRead.observe(reads[i + 1] as number);
      }
      for (let i = 0; i + 1 < writes.length; i += 2) {
        requests.sessionWriteBytes.observe(writes[i] as number);
        requests.sessionWrite.observe(writes[i + 1] as number);
      }
    }
    this.hooks.noteHits?.(blocks);
  }

  /**
   * Refuses new requests and resolves once those already begun have been answered; the
   * session's last writes reach the stack, so the flush that follows stores them.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.hooks.takeWritten?.(true);
    await Promise.allSettled([...this.inFlight]);
  }

  private answer(
    what: string,
    timer: Histogram | undefined,
    work: () => Promise<number>,
    replies: Replies,
    id: number,
    done: (n: number) => void,
  ): void {
    const started = timer === undefined ? 0 : performance.now();
    const settled = work().then(
      (n) => {
        timer?.observeSince(started);
        done(n);
      },
      (err: unknown) => {
        timer?.observeSince(started);
        this.log.error(`${what}: ${(err as Error).message ?? String(err)}`);
        replies.reply(id, -errnoFor(err));
      },
    );
    this.inFlight.add(settled);
    void settled.finally(() => this.inFlight.delete(settled));
  }
}
