// The "already mounted" flag: object <prefix>s3backer-mounted, set while a read-write mount is
// up, so a second mount of the same bucket (which would corrupt it) is refused.
//
// Beyond upstream, the flag is claimed with a conditional write: If-None-Match: * when there was
// none, If-Match: <its ETag> when a mount takes over the flag it saw. Of two mounts racing for a
// bucket, exactly one then wins on a store that honours the headers (S3 since 2024, moto); the
// unmount takes the flag down only while it still has our ETag. Stores that ignore the headers
// (s3rver) behave as before; stores that refuse them (501, or a 400) get a warning and a plain
// write.

import { hostname } from 'node:os';
import { randomInt } from 'node:crypto';
import { mountedFlagKey, type BlockNaming } from '../format/blockNames';
import { FLAG_CONTENT_TYPE, META_MOUNT_TOKEN, mountedFlagBody } from '../format/blockMeta';
import { ConditionFailedError, ConditionUnsupportedError, type ObjectStore, type WriteCondition } from '../backend/objectStore';
import type { Logger } from '../util/log';
import { ConfigError } from '../errors';

/** Upstream's token for --sharedDiskMode: every shared mount writes it, so they admit each other. */
export const SHARED_DISK_TOKEN = 0x7fffffff;

/** The flag as read: absent, or present with its token, ETag and what its body says. */
export interface MountedFlagState {
  readonly present: boolean;
  /** Present with a non-zero token (or none at all). */
  readonly mounted: boolean;
  readonly token: string | undefined;
  readonly etag: string | undefined;
  /** The body's first line (upstream writes the host name there) and second (UTC time). */
  readonly host: string | undefined;
  readonly since: string | undefined;
}

const ABSENT: MountedFlagState = { present: false, mounted: false, token: undefined, etag: undefined, host: undefined, since: undefined };

/** One GET (the body is a few bytes): token, ETag and host together. */
export async function readMountedFlag(objects: ObjectStore, naming: BlockNaming): Promise<MountedFlagState> {
  const obj = await objects.get(mountedFlagKey(naming), 4096);
  if (obj === null) return ABSENT;
  const token = obj.metadata[META_MOUNT_TOKEN];
  // Upstream treats a token of zero as "not mounted".
  const mounted = token === undefined || !/^0*$/.test(token.trim());
  const [host, since] = obj.body
    .toString('utf8')
    .split('\n')
    .map((line) => line.trim());
  return { present: true, mounted, token, etag: obj.etag, host: host || undefined, since: since || undefined };
}

/** For messages: "host h since t" (what the flag's body says), or its token when it says nothing. */
export function holderText(flag: MountedFlagState): string {
  if (flag.host !== undefined) return `host ${flag.host}${flag.since !== undefined ? ` since ${flag.since}` : ''}`;
  return flag.token !== undefined ? `mount token ${flag.token}` : 'an unknown mount';
}

/** A fresh non-zero mount token (also written into the cache file's header); never the shared one. */
export function newMountToken(): number {
  return randomInt(1, SHARED_DISK_TOKEN);
}

export function tokenText(token: number): string {
  return token.toString(16).padStart(8, '0');
}

/** The numeric value of a flag's token, 0 when absent or unreadable. */
export function tokenValue(text: string | undefined): number {
  return text !== undefined && /^[0-9a-f]{1,8}$/i.test(text.trim()) ? parseInt(text.trim(), 16) : 0;
}

export const isSharedFlag = (flag: MountedFlagState): boolean => flag.present && tokenValue(flag.token) === SHARED_DISK_TOKEN;

export interface AdmitOptions {
  readonly description: string;
  /** The flag's key, for messages. */
  readonly flagKey: string;
  readonly force: boolean;
  readonly sharedDiskMode: boolean;
  /** The cache file whose token is the flag's, given with --blockCacheRecoverDirtyBlocks. */
  readonly ownCrashCacheFile: string | undefined;
}

/**
 * Upstream's rule, for read-only mounts too: a set flag refuses the mount unless --force, or the
 * flag is the one our crashed mount left (its cache file carries the same token and the mount
 * asks to recover its dirty blocks), or both this mount and the flag are in shared disk mode.
 */
export function admitMount(flag: MountedFlagState, o: AdmitOptions, log: Logger): void {
  if (!flag.mounted) return;
  const shared = isSharedFlag(flag);
  if (shared && o.sharedDiskMode) return;
  if (o.ownCrashCacheFile !== undefined) {
    log.warn(`the mounted flag was left by the mount that crashed using ${o.ownCrashCacheFile}; taking over`);
    return;
  }
  if (o.force) {
    log.warn(`the mounted flag is set${shared ? ' for shared disk mode' : ''}; mounting anyway because of --force`);
    return;
  }
  if (shared) {
    throw new ConfigError(
      `${o.description} appears to be configured for shared disk mode (flag ${o.flagKey} carries the shared token): ` +
        'mount it with --sharedDiskMode, or use --force or --reset-mounted-flag',
    );
  }
  throw new ConfigError(
    `${o.description} appears to be mounted already (flag ${o.flagKey} is set by ${holderText(flag)}); ` +
      'if it is not, use --force or --reset-mounted-flag',
  );
}

/**
 * The flag's body: host and time to the second, so its ETag (the body's MD5) is the same for two
 * flags of one host within a second. A flag that replaces another must differ from it, or the
 * replaced mount's If-Match at unmount would take the new flag down: wait for the next second.
 */
async function freshBody(seen: MountedFlagState): Promise<Buffer> {
  const host = hostname();
  for (;;) {
    const body = mountedFlagBody(host, new Date());
    if (!seen.present || body !== `${seen.host ?? ''}\n${seen.since ?? ''}\n`) return Buffer.from(body);
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
  }
}

/** What a mount holds once it has claimed the flag: releaseMountedFlag needs it. */
export interface FlagClaim {
  readonly token: string;
  /** Our PUT's ETag; undefined when the store gave none (then the token is compared instead). */
  readonly etag: string | undefined;
}

/**
 * Sets the flag with this token, unless another mount set one since `seen` was read: then one
 * line says who, and nothing is written. `seen` is what the mount's checks let through: absent,
 * or a flag it may replace (--force, the flag of our own crashed mount). A forced write is
 * conditional too, on the ETag of the flag that was seen: --force overrides the stale flag the
 * user looked at, not a live mount that took the bucket while this one was starting.
 */
export async function claimMountedFlag(
  objects: ObjectStore,
  naming: BlockNaming,
  token: number,
  seen: MountedFlagState,
  log: Logger,
): Promise<FlagClaim> {
  const key = mountedFlagKey(naming);
  const text = tokenText(token);
  const body = await freshBody(seen);
  const options = { contentType: FLAG_CONTENT_TYPE, metadata: { [META_MOUNT_TOKEN]: text } };
  // A seen flag without an ETag (a store that gives none) can only be overwritten plainly.
  const condition: WriteCondition | undefined = !seen.present
    ? { ifNoneMatch: '*' }
    : seen.etag !== undefined
      ? { ifMatch: seen.etag }
      : undefined;
  const established = (etag: string | undefined): FlagClaim => {
    log.info(token === SHARED_DISK_TOKEN ? 'established the mount token of shared disk mode' : `established mount token ${text}`);
    return { token: text, etag };
  };
  try {
    return established((await objects.put(key, body, { ...options, condition })).etag);
  } catch (err) {
    if (err instanceof ConditionUnsupportedError) {
      log.warn(
        `${objects.description} does not take conditional writes (${err.message}): ` +
          'the mounted flag is set without protection against a mount starting at the same moment',
      );
      return established((await objects.put(key, body, options)).etag);
    }
    if (!(err instanceof ConditionFailedError)) throw err;
  }
  const now = await readMountedFlag(objects, naming);
  // A retried PUT finds the flag our first attempt wrote (its answer was lost): ours all the same.
  if (now.present && now.token === text) return established(now.etag);
  if (tokenValue(text) === SHARED_DISK_TOKEN && isSharedFlag(now)) return { token: text, etag: undefined };
  throw new ConfigError(
    now.present
      ? `${objects.description} was mounted by ${holderText(now)} while this mount was starting: not mounted`
      : `${objects.description}: the mounted flag changed while this mount was starting: not mounted; try again`,
  );
}

/**
 * Takes the flag down if it is still ours: If-Match our PUT's ETag. When the ETag is unknown or
 * the store refuses the header, the flag's token is compared first. Another mount's flag (one
 * that took over with --force) is left, with a warning.
 */
export async function releaseMountedFlag(objects: ObjectStore, naming: BlockNaming, claim: FlagClaim, log: Logger): Promise<void> {
  const key = mountedFlagKey(naming);
  const leave = async (): Promise<void> => {
    const now = await readMountedFlag(objects, naming).catch(() => undefined);
    log.warn(
      `the mounted flag of ${objects.description} is no longer this mount's` +
        (now?.present ? ` (${holderText(now)} holds it)` : '') +
        ': another mount took it over; leaving it set',
    );
  };
  const compareThenDelete = async (): Promise<void> => {
    const now = await readMountedFlag(objects, naming);
    if (!now.present) return;
    if (now.token !== claim.token) return leave();
    await objects.delete(key);
  };
  if (claim.etag === undefined) return compareThenDelete();
  try {
    await objects.delete(key, { ifMatch: claim.etag });
  } catch (err) {
    if (err instanceof ConditionFailedError) return leave();
    if (err instanceof ConditionUnsupportedError) {
      log.debug(`${objects.description} refuses a conditional delete (${err.message}): comparing the token instead`);
      return compareThenDelete();
    }
    throw err;
  }
}

/** Unconditional: --reset-mounted-flag and --erase clear whatever flag is there. */
export async function clearMountedFlag(objects: ObjectStore, naming: BlockNaming): Promise<void> {
  await objects.delete(mountedFlagKey(naming));
}
