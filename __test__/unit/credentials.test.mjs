import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { resolveCredentials, parseAccessFile } = require('../../dist/backend/s3/credentials.js');

test('access file: id:key lines, first one by default, matching --accessId otherwise', () => {
  const dir = mkdtempSync(join(tmpdir(), 's3b-cred-'));
  try {
    const file = join(dir, 'passwd');
    writeFileSync(file, '# comment\n\nAKIA1:secret1\nAKIA2:sec:ret2\n');
    assert.deepEqual(parseAccessFile('a:b\nnocolon\n'), [{ id: 'a', key: 'b' }]);
    const first = resolveCredentials({ accessFile: file, accessFileGiven: true });
    assert.equal(first.kind, 'static');
    assert.equal(first.accessKeyId, 'AKIA1');
    assert.equal(first.secretAccessKey, 'secret1');
    const second = resolveCredentials({ accessId: 'AKIA2', accessFile: file, accessFileGiven: true });
    assert.equal(second.secretAccessKey, 'sec:ret2');
    assert.throws(() => resolveCredentials({ accessId: 'NOPE', accessFile: file, accessFileGiven: true }), /no key for access ID/);
    assert.throws(() => resolveCredentials({ accessFile: join(dir, 'missing'), accessFileGiven: true }), /cannot read --accessFile/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('explicit keys, anonymous, and the default chain', () => {
  const none = { accessFile: '/nonexistent/passwd', accessFileGiven: false };
  assert.equal(resolveCredentials({ ...none, accessId: 'A', accessKey: 'K' }).kind, 'static');
  assert.equal(resolveCredentials({ ...none, accessId: '' }).kind, 'anonymous');
  assert.equal(resolveCredentials(none).kind, 'defaultChain');
});
