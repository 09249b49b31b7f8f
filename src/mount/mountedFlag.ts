// The "already mounted" flag: object <prefix>s3backer-mounted, set while a read-write mount is
// up, so a second mount of the same bucket (which would corrupt it) is refused.

import { hostname } from 'node:os';
import { randomInt } from 'node:crypto';
import { mountedFlagKey, type BlockNaming } from '../format/blockNames';
import { FLAG_CONTENT_TYPE, META_MOUNT_TOKEN, mountedFlagBody } from '../format/blockMeta';
import type { ObjectStore } from '../backend/objectStore';

export interface MountedFlagState {
  readonly mounted: boolean;
  readonly token: string | undefined;
}

export async function readMountedFlag(objects: ObjectStore, naming: BlockNaming): Promise<MountedFlagState> {
  const head = await objects.head(mountedFlagKey(naming));
  if (head === null) return { mounted: false, token: undefined };
  const token = head.metadata[META_MOUNT_TOKEN];
  // Upstream treats a token of zero as "not mounted".
  const mounted = token === undefined || !/^0*$/.test(token.trim());
  return { mounted, token };
}

/** A fresh non-zero mount token (also written into the cache file's header). */
export function newMountToken(): number {
  return randomInt(1, 0x7fffffff);
}

export function tokenText(token: number): string {
  return token.toString(16).padStart(8, '0');
}

/** The numeric value of a flag's token, 0 when absent or unreadable. */
export function tokenValue(text: string | undefined): number {
  return text !== undefined && /^[0-9a-f]{1,8}$/i.test(text.trim()) ? parseInt(text.trim(), 16) : 0;
}

/** Sets the flag with this token (a fresh one by default) and returns the token's text. */
export async function setMountedFlag(objects: ObjectStore, naming: BlockNaming, now = new Date(), token = newMountToken()): Promise<string> {
  await objects.put(mountedFlagKey(naming), Buffer.from(mountedFlagBody(hostname(), now)), {
    contentType: FLAG_CONTENT_TYPE,
    metadata: { [META_MOUNT_TOKEN]: tokenText(token) },
  });
  return tokenText(token);
}

export async function clearMountedFlag(objects: ObjectStore, naming: BlockNaming): Promise<void> {
  await objects.delete(mountedFlagKey(naming));
}
