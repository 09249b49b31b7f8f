import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { resolveCredentials, parseAccessFile } from '../../dist/backend/s3/credentials.js';

/** @typedef {Extract<import('../../dist/backend/s3/credentials.js').CredentialSource, { kind: 'static' }>} StaticCredentials */

/** --accessId and --accessKey not given: undefined, as the parser leaves them. */
const noKeys = { accessId: undefined, accessKey: undefined };

test('access file: id:key lines, first one by default, matching --accessId otherwise', () => {
  const dir = mkdtempSync(join(tmpdir(), 's3b-cred-'));
  try {
    const file = join(dir, 'passwd');
    writeFileSync(file, '# comment\n\nAKIA1:secret1\nAKIA2:sec:ret2\n');
    assert.deepEqual(parseAccessFile('a:b\nnocolon\n'), [{ id: 'a', key: 'b' }]);
    const first = resolveCredentials({ ...noKeys, accessFile: file, accessFileGiven: true });
    assert.equal(first.kind, 'static');
    assert.equal(first.accessKeyId, 'AKIA1');
    assert.equal(first.secretAccessKey, 'secret1');
    // From the access file: static credentials (the first test above checks the kind).
    const second = /** @type {StaticCredentials} */ (
      resolveCredentials({ ...noKeys, accessId: 'AKIA2', accessFile: file, accessFileGiven: true })
    );
    assert.equal(second.secretAccessKey, 'sec:ret2');
    assert.throws(
      () => resolveCredentials({ ...noKeys, accessId: 'NOPE', accessFile: file, accessFileGiven: true }),
      /no key for access ID/,
    );
    assert.throws(
      () => resolveCredentials({ ...noKeys, accessFile: join(dir, 'missing'), accessFileGiven: true }),
      /cannot read --accessFile/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('explicit keys, anonymous, and the default chain', () => {
  const none = { ...noKeys, accessFile: '/nonexistent/passwd', accessFileGiven: false };
  assert.equal(resolveCredentials({ ...none, accessId: 'A', accessKey: 'K' }).kind, 'static');
  assert.equal(resolveCredentials({ ...none, accessId: '' }).kind, 'anonymous');
  assert.equal(resolveCredentials(none).kind, 'defaultChain');
});
