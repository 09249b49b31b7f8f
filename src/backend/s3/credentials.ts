// Where S3 credentials come from: explicit flags, upstream's access file, or the AWS default chain.

import { readFileSync } from 'node:fs';
import { ConfigError } from '../../errors';

export type CredentialSource =
  | { kind: 'static'; accessKeyId: string; secretAccessKey: string; from: string }
  | { kind: 'anonymous' }
  | { kind: 'ec2Iam'; role: string | undefined; imdsV2: boolean }
  | { kind: 'defaultChain' };

export interface CredentialFlags {
  readonly accessId: string | undefined;
  readonly accessKey: string | undefined;
  readonly accessFile: string;
  readonly accessFileGiven: boolean;
  readonly ec2Iam?: { readonly role: string | undefined; readonly imdsV2: boolean } | undefined;
}

/** Parses upstream's access file: `accessId:accessKey` per line; blank lines and `#` comments skipped. */
export function parseAccessFile(text: string): Array<{ id: string; key: string }> {
  const pairs: Array<{ id: string; key: string }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    pairs.push({ id: line.slice(0, colon), key: line.slice(colon + 1) });
  }
  return pairs;
}

export function resolveCredentials(flags: CredentialFlags): CredentialSource {
  if (flags.ec2Iam) return { kind: 'ec2Iam', role: flags.ec2Iam.role, imdsV2: flags.ec2Iam.imdsV2 };
  if (flags.accessId === '') return { kind: 'anonymous' };
  if (flags.accessId !== undefined && flags.accessKey !== undefined) {
    return { kind: 'static', accessKeyId: flags.accessId, secretAccessKey: flags.accessKey, from: '--accessKey' };
  }
  let text: string | undefined;
  try {
    text = readFileSync(flags.accessFile, 'utf8');
  } catch (err) {
    if (flags.accessFileGiven) {
      throw new ConfigError(`cannot read --accessFile ${flags.accessFile}: ${(err as Error).message}`);
    }
  }
  if (text !== undefined) {
    const pairs = parseAccessFile(text);
    const pair = flags.accessId === undefined ? pairs[0] : pairs.find((p) => p.id === flags.accessId);
    if (pair) return { kind: 'static', accessKeyId: pair.id, secretAccessKey: pair.key, from: flags.accessFile };
    if (flags.accessId !== undefined) {
      throw new ConfigError(`no key for access ID "${flags.accessId}" in ${flags.accessFile}; give --accessKey`);
    }
  }
  if (flags.accessId !== undefined) throw new ConfigError(`--accessId given without --accessKey or an access file entry`);
  return { kind: 'defaultChain' };
}
