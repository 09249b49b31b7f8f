#!/usr/bin/env node
// Where a running process's CPU goes, by thread: user and system seconds each thread group spent
// while a command ran (or for a number of seconds), from /proc/PID/task/*/stat. Threads are
// grouped by name with trailing digits dropped ("fuser-3" -> "fuser-N"); the thread whose id is
// the process's is "main" (Node's JS thread). Works for ours and for upstream's C build alike.
//   node bench/threadCpu.mjs PID -- COMMAND [ARGS...]   e.g. -- dd if=src of=mnt/file bs=1M conv=fsync
//   node bench/threadCpu.mjs PID --seconds 5
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const USAGE = 'usage: node bench/threadCpu.mjs PID (-- COMMAND [ARGS...] | --seconds N)';
const [pidText, ...rest] = process.argv.slice(2);
const pid = Number(pidText);
if (!Number.isInteger(pid) || pid <= 0 || (rest[0] !== '--' && rest[0] !== '--seconds') || rest.length < 2) {
  console.error(USAGE);
  process.exit(2);
}
const TICK = 100; // USER_HZ: /proc counts clock ticks of 1/100 s on Linux

/** User and system seconds per thread group, now. */
function sample() {
  const out = {};
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    console.error(`threadCpu: no process ${pid}`);
    process.exit(1);
  }
  for (const tid of tasks) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the read
    }
    const name = Number(tid) === pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, 'N');
    // After "(name) ", field 0 is the state; utime and stime are the 12th and 13th (stat(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const t = (out[name] ??= { user: 0, system: 0 });
    t.user += Number(fields[11]) / TICK;
    t.system += Number(fields[12]) / TICK;
  }
  return out;
}

const before = sample();
const started = performance.now();
if (rest[0] === '--') {
  const r = spawnSync(rest[1], rest.slice(2), { stdio: 'inherit' });
  if (r.status !== 0) console.error(`threadCpu: ${rest[1]} exited with ${r.status ?? r.signal}`);
} else {
  await new Promise((resolve) => setTimeout(resolve, Number(rest[1]) * 1000));
}
const seconds = (performance.now() - started) / 1000;
const after = sample();
const rows = Object.entries(after)
  .map(([name, t]) => ({ name, user: t.user - (before[name]?.user ?? 0), system: t.system - (before[name]?.system ?? 0) }))
  .filter((r) => r.user + r.system > 0)
  .sort((a, b) => b.user + b.system - (a.user + a.system));
const total = rows.reduce((s, r) => s + r.user + r.system, 0);
console.log(`${total.toFixed(2)} CPU-s in ${seconds.toFixed(2)} s (threads that ended meanwhile are not counted)`);
for (const r of rows)
  console.log(`${(r.user + r.system).toFixed(2).padStart(7)}  user ${r.user.toFixed(2)}  system ${r.system.toFixed(2)}  ${r.name}`);
