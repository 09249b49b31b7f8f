// The block codec for a mount, and the check that an encryption password is the bucket's: a
// stored block must authenticate before anything is mounted.

import { type Config } from '../config/config';
import { createBlockCodec, type BlockCodec } from '../native/addon';
import { blockKey, parseBlockKey, type BlockNaming } from '../format/blockNames';
import { META_HMAC } from '../backend/blockBackend';
import type { ObjectStore } from '../backend/objectStore';
import { ConfigError } from '../errors';

export function makeCodec(config: Config, blockSize: number): BlockCodec {
  const c = config.codec;
  if (c.cipher !== undefined && c.password === undefined) throw new ConfigError('--encrypt needs a password');
  try {
    return createBlockCodec({
      blockSize,
      compression: c.compression,
      level: c.level,
      cipher: c.cipher,
      password: c.password,
      // Upstream salts the key with the bucket and prefix.
      salt: `${config.bucket}/${config.prefix}`,
      keyLength: c.keyLength,
    });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/** Decodes one stored block (block 0, else the first listed); a failure means a wrong password. */
export async function checkPassword(
  objects: ObjectStore,
  naming: BlockNaming & { blockSize: number; numBlocks: number },
  codec: BlockCodec,
): Promise<void> {
  let key: string | undefined = blockKey(naming, 0);
  if ((await objects.head(key)) === null) {
    key = undefined;
    await objects.list(naming.prefix, (keys) => {
      key ??= keys.find((k) => parseBlockKey(naming, k, naming.numBlocks) !== undefined);
    });
  }
  if (key === undefined) return; // a new disk: nothing to check against
  const obj = await objects.get(key);
  if (obj === null) return;
  const blockNum = parseBlockKey(naming, key, naming.numBlocks) ?? 0;
  try {
    await codec.decode(blockNum, obj.body, obj.contentEncoding ?? '', obj.metadata[META_HMAC]);
  } catch (err) {
    const why = (err as Error).message.replace(/^block \d+: /, '');
    throw new ConfigError(
      /HMAC/.test(why)
        ? `wrong password: stored block ${key} does not authenticate with it`
        : `stored block ${key} cannot be read with this encryption setting: ${why}`,
    );
  }
}
