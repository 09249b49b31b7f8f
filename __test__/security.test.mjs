// Secrets stay secret: keys and passwords never appear in logs (even --debug --debug-http), the
// stats file, the metrics endpoint, error messages or the process's command line; secret files
// open to others draw a warning; allow_other and the file modes are what the flags say.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { useS3Server } from './helpers/s3server.mjs';
import { startMount, runCli, runCommand, workdir, freePort } from './helpers/ours.mjs';

const env = useS3Server('security', { before, after, workdir });

// s3rver checks the access key ID only, so any secret key signs acceptably.
const SECRET = 'TopSecretKey-7f3a9';
const PASSWORD = 'PassPhrase-2b8e1';
const base = () => [`--baseURL=${env.server.endpoint}/`, '--accessId=S3RVER', '--blockSize=4k', '--size=1m'];

test('keys and passwords never reach the log, the stats file, the metrics, errors or the command line', { timeout: 120000 }, async () => {
  const port = await freePort();
  const m = await startMount(
    [
      ...base(),
      `--accessKey=${SECRET}`,
      '--encrypt',
      `--password=${PASSWORD}`,
      '--prefix=sec/',
      '--debug',
      '--debug-http',
      `--metricsPort=${port}`,
      'disk',
      env.w.mnt,
    ],
    env.w.mnt,
  );
  let cmdline;
  let stats;
  let metrics;
  let statsJson;
  try {
    await writeFile(join(env.w.mnt, 'file'), Buffer.alloc(8192, 1), { flag: 'r+' });
    stats = await readFile(join(env.w.mnt, 'stats'), 'utf8');
    cmdline = (await readFile(`/proc/${m.child.pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
    metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
    statsJson = await fetch(`http://127.0.0.1:${port}/stats.json`).then((r) => r.text());
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  const log = m.stderr();
  assert.match(log, /http: PUT /, 'the debug log ran');
  assert.match(metrics, /^# TYPE s3backer_s3_request_duration_seconds histogram$/m, 'the metrics were served');
  assert.match(statsJson, /"http_puts"/);
  assert.match(log, /warning: --password is visible to other users of this machine; --passwordFile is safer/);
  for (const [where, text] of [
    ['log', log],
    ['stats', stats],
    ['command line', cmdline],
    ['metrics', metrics],
    ['stats.json', statsJson],
  ]) {
    assert.ok(!text.includes(SECRET), `secret key in the ${where}`);
    assert.ok(!text.includes(PASSWORD), `password in the ${where}`);
    assert.doesNotMatch(text, /Signature=|Credential=/, `signing material in the ${where}`);
  }
  assert.equal(cmdline.trim(), `s3backer disk ${env.w.mnt}`);

  // Failures name what failed, never the secret: a missing bucket, and a wrong password.
  let res = await runCli(['-f', ...base(), `--accessKey=${SECRET}`, '--prefix=sec/', 'missing-bucket', env.w.mnt]);
  assert.equal(res.code, 1);
  res = await runCli([
    '-f',
    ...base(),
    `--accessKey=${SECRET}`,
    '--encrypt',
    `--password=${PASSWORD}x`,
    '--prefix=sec/',
    'disk',
    env.w.mnt,
  ]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /password/i);
  assert.ok(!res.stderr.includes(SECRET) && !res.stderr.includes(PASSWORD), res.stderr);
});

test('an access file or password file open to other users draws a warning; mode 0600 does not', { timeout: 120000 }, async () => {
  const accessFile = join(env.w.root, 'passwd');
  const passwordFile = join(env.w.root, 'password');
  await writeFile(accessFile, `S3RVER:${SECRET}\n`);
  await writeFile(passwordFile, `${PASSWORD}\n`);
  const args = [
    `--baseURL=${env.server.endpoint}/`,
    `--accessFile=${accessFile}`,
    '--encrypt',
    `--passwordFile=${passwordFile}`,
    '--prefix=pf/',
    '--blockSize=4k',
    '--size=1m',
    '--reset-mounted-flag',
    'disk',
  ];
  await chmod(accessFile, 0o644);
  await chmod(passwordFile, 0o640);
  let res = await runCli(args);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, new RegExp(`warning: access file ${accessFile} is open to other users \\(mode 0644\\); chmod 600 it`));
  assert.match(res.stderr, new RegExp(`warning: --passwordFile ${passwordFile} is open to other users \\(mode 0640\\)`));
  await chmod(accessFile, 0o600);
  await chmod(passwordFile, 0o600);
  res = await runCli(args);
  assert.equal(res.code, 0, res.stderr);
  assert.doesNotMatch(res.stderr, /open to other users/);
});

test('allow_other only when asked for; the file and stats modes as documented', { timeout: 120000 }, async () => {
  const mountOptions = async () => (await readFile('/proc/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === env.w.mnt) ?? '';
  let m = await startMount([...base(), `--accessKey=${SECRET}`, '--prefix=ao/', 'disk', env.w.mnt], env.w.mnt);
  try {
    assert.doesNotMatch(await mountOptions(), /allow_other/);
    assert.equal((await stat(join(env.w.mnt, 'file'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(env.w.mnt, 'stats'))).mode & 0o777, 0o400);
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  m = await startMount(
    [...base(), `--accessKey=${SECRET}`, '--prefix=ao/', '-o', 'allow_other', '--fileMode=0640', 'disk', env.w.mnt],
    env.w.mnt,
  );
  try {
    assert.match(await mountOptions(), /allow_other/);
    assert.equal((await stat(join(env.w.mnt, 'file'))).mode & 0o777, 0o640);
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});

/** Runs a shell command as user nobody: { code, stdout, stderr }. */
async function asNobody(command) {
  return runCommand('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '/bin/sh', '-c', command]);
}

test('with allow_other the modes shown are what the kernel enforces for other users', { timeout: 120000 }, async () => {
  // Other users must reach the mount point for the test to mean anything.
  await chmod(env.w.root, 0o711);
  const file = join(env.w.mnt, 'file');
  const stats = join(env.w.mnt, 'stats');
  let m = await startMount([...base(), `--accessKey=${SECRET}`, '--prefix=perm/', '-o', 'allow_other', 'disk', env.w.mnt], env.w.mnt);
  try {
    assert.equal((await asNobody(`ls ${env.w.mnt}`)).code, 0, 'the directory (0755) is listable');
    const read = await asNobody(`head -c 16 ${file} >/dev/null`);
    assert.notEqual(read.code, 0, 'reading a 0600 root file is refused');
    assert.match(read.stderr, /Permission denied/);
    const write = await asNobody(`printf intruder | dd of=${file} conv=notrunc status=none`);
    assert.notEqual(write.code, 0, 'writing it is refused');
    assert.match(write.stderr, /Permission denied/);
    assert.equal((await readFile(file)).subarray(0, 8).toString('latin1'), '\0'.repeat(8), 'nothing was written');
    const statsRead = await asNobody(`cat ${stats}`);
    assert.notEqual(statsRead.code, 0, 'the 0400 stats file is refused');
    assert.match(statsRead.stderr, /Permission denied/);
    assert.notEqual((await asNobody(`rm -f ${stats}`)).code, 0, 'nor can it be removed (which resets the counters)');
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
  m = await startMount(
    [...base(), `--accessKey=${SECRET}`, '--prefix=perm/', '-o', 'allow_other', '--fileMode=0666', 'disk', env.w.mnt],
    env.w.mnt,
  );
  try {
    assert.equal((await asNobody(`printf welcome | dd of=${file} conv=notrunc status=none`)).code, 0, 'a 0666 file takes writes');
    assert.equal((await readFile(file)).subarray(0, 7).toString('latin1'), 'welcome');
    assert.match((await asNobody(`cat ${stats}`)).stdout, /http_puts/, 'the stats file (0444 then) is readable');
  } finally {
    assert.deepEqual(await m.stop(), { code: 0, signal: null });
  }
});
