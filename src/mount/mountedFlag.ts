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

/** Sets the flag with a fresh non-zero token and returns the token. */
export async function setMountedFlag(objects: ObjectStore, naming: BlockNaming, now = new Date()): Promise<string> {
  const token = randomInt(1, 0x7fffffff).toString(16).padStart(8, '0');
  await objects.put(mountedFlagKey(naming), Buffer.from(mountedFlagBody(hostname(), now)), {
    contentType: FLAG_CONTENT_TYPE,
    metadata: { [META_MOUNT_TOKEN]: token },
  });
  return token;
}

export async function clearMountedFlag(objects: ObjectStore, naming: BlockNaming): Promise<void> {
  await objects.delete(mountedFlagKey(naming));
}
