// Starts the native FUSE session for a mount and tells when it ends. The session's defaults are
// upstream's (subtype s3backer, nodev, nosuid, default_permissions, kernel_cache), then the
// user's `-o` options apply.

import { FuseSessions, type BlockMap, type FuseSessionOptions } from '../native/addon';
import { applyFuseOptions, type FuseTuning } from './fuseOptions';
import type { FuseFrontEnd } from './fuseFrontEnd';
import type { Logger } from '../util/log';

export interface SessionSettings {
  readonly mountpoint: string;
  readonly filename: string;
  readonly statsFilename: string;
  readonly fileMode: number;
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly readOnly: boolean;
  readonly directIO: boolean;
  /** What the mount table shows as the source, as upstream: the bucket's description. */
  readonly description: string;
  readonly fuseOptions: readonly string[];
  /** The block cache's map: reads and writes of the blocks it lets the session serve skip JS. */
  readonly blockMap?: BlockMap | undefined;
}

export interface MountedSession {
  /** Unmounts; lazy detaches at once and fails what is still open. Throws when refused (busy). */
  unmount(lazy: boolean): void;
  /** Resolves when the kernel mount is gone, however it went; nothing arrives after that. */
  readonly ended: Promise<void>;
  /** Lets Node's event loop end (the session alone does not hold it), once the mount is done with. */
  release(): void;
}

/** Largest request the kernel sends (its max_pages_limit of 256 pages caps it at 1 MiB). */
const MAX_REQUEST = 1024 * 1024;

export function sessionOptions(s: SessionSettings): FuseSessionOptions {
  const defaults: FuseTuning = {
    access: 'owner',
    // A comma would split the option string fusermount is handed.
    fsname: /^[^\s,\\]+$/.test(s.description) ? s.description : 's3backer',
    subtype: 's3backer',
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    umask: undefined,
    attrTimeoutMs: 1000,
    entryTimeoutMs: 1000,
    maxWrite: MAX_REQUEST,
    maxReadahead: undefined,
    maxBackground: undefined,
    congestionThreshold: undefined,
    asyncRead: true,
    directIO: s.directIO,
    keepCache: true,
    mountOptions: ['nodev', 'nosuid'],
  };
  const t = applyFuseOptions(defaults, s.fuseOptions);
  return {
    mountpoint: s.mountpoint,
    filename: s.filename,
    statsFilename: s.statsFilename,
    fileMode: t.umask === undefined ? s.fileMode : 0o777 & ~t.umask,
    fileSize: s.blockSize * s.numBlocks,
    blockSize: s.blockSize,
    uid: t.uid,
    gid: t.gid,
    readOnly: s.readOnly,
    directIO: t.directIO,
    keepCache: t.keepCache,
    maxWrite: t.maxWrite,
    maxReadahead: t.maxReadahead,
    maxBackground: t.maxBackground,
    congestionThreshold: t.congestionThreshold,
    asyncRead: t.asyncRead,
    attrTimeoutMs: t.attrTimeoutMs,
    entryTimeoutMs: t.entryTimeoutMs,
    access: t.access,
    fsname: t.fsname ?? 's3backer',
    subtype: t.subtype,
    mountOptions: [...new Set(t.mountOptions)],
    threads: 1,
  };
}

/** Mounts (the kernel's handshake done before it returns); throws with the reason if refused. */
export function startSession(settings: SessionSettings, frontEnd: FuseFrontEnd, log: Logger): MountedSession {
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  // Requests reach JS only once this function has returned (they queue for the JS thread).
  const session = FuseSessions.mount(
    sessionOptions(settings),
    (request) => frontEnd.handle(session, request),
    (error) => {
      if (error !== null) log.error(`FUSE session: ${error}`);
      resolveEnded();
    },
    settings.blockMap ?? null,
  );
  // The session's callbacks do not hold the event loop; this does, until release().
  const keepAlive = setInterval(() => {}, 2 ** 30);
  return { unmount: (lazy) => session.unmount(lazy), ended, release: () => clearInterval(keepAlive) };
}
