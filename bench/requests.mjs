#!/usr/bin/env node
// The network path: requests per second of 64 KiB objects against bench/endpoint/ with 0 ms
// delay, from raw node:http (keep-alive, no signing: the ceiling for a Node client) and
// from our S3 request path (src/backend/s3/s3ObjectStore.ts: SigV4 signing, retries, stats, on our
// own sockets), same concurrency. Our store is opened as a mount opens it, from a command line
// (its defaults: timeouts, retry pauses, the requests allowed in flight).
//   node bench/requests.mjs [--seconds N] [--inflight N] [--size BYTES]
// Prints a table and returns the figures when imported (measureRequests()).
import * as http from 'node:http';
import { startEndpoint } from './endpoint.mjs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';

const HERE = dirname(fileURLToPath(import.meta.url));

// Both clients send a Content-MD5, as the tools do (the endpoint then does not hash the body);
// the body is the same every time, so it is hashed once.
const md5s = new WeakMap();
const md5Of = (body) => {
  if (!md5s.has(body)) md5s.set(body, createHash('md5').update(body).digest('base64'));
  return md5s.get(body);
};

/** Runs `one(i)` with `inflight` at once for `seconds`; returns completed requests per second. */
async function rate(seconds, inflight, one) {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const worker = async (w) => {
    for (let i = w; performance.now() < until; i += inflight) {
      await one(i);
      done++;
    }
  };
  const t = performance.now();
  await Promise.all(Array.from({ length: inflight }, (_, w) => worker(w)));
  return done / ((performance.now() - t) / 1000);
}

function rawClient(port, inflight) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
  const request = (method, path, body) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          agent,
          headers: body ? { 'content-length': body.length, 'content-md5': md5Of(body) } : {},
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => (res.statusCode < 300 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return {
    put: (key, body) => request('PUT', `/bench/${key}`, body),
    get: (key) => request('GET', `/bench/${key}`),
    close: () => agent.destroy(),
  };
}

async function ourClient(port) {
  const load = (...path) => import(pathToFileURL(join(HERE, '..', 'dist', ...path)).href);
  const { parseCommandLine } = await load('cli', 'parseArgs.js');
  const { buildConfig } = await load('config', 'config.js');
  const { openObjects } = await load('mount', 'openObjects.js');
  const { HttpStats } = await load('backend', 'httpStats.js');
  const cli = parseCommandLine([`--baseURL=http://127.0.0.1:${port}/`, '--accessId=bench', '--accessKey=bench', 'bench', '/unused'], '0');
  const log = { error() {}, warn() {}, info() {}, debug() {}, http() {} };
  const store = openObjects(buildConfig(cli.args), new HttpStats(), log);
  return {
    put: (key, body) => store.put(key, body, { contentType: 'application/x-s3backer-block', contentMD5: md5Of(body) }),
    get: async (key) => (await store.get(key)).body,
    close: () => store.close(),
  };
}

export async function measureRequests({ seconds = 4, inflight = 32, size = 65536 } = {}) {
  const endpoint = await startEndpoint(0);
  const body = randomBytes(size);
  const keys = 256;
  const out = {};
  try {
    for (const [name, make] of [
      ['raw', rawClient],
      ['ours', ourClient],
    ]) {
      const client = await make(endpoint.port, inflight);
      const prefix = `${name}-`;
      // Warm-up (JIT, sockets), then measure.
      await rate(0.5, inflight, (i) => client.put(`${prefix}${i % keys}`, body));
      const puts = await rate(seconds, inflight, (i) => client.put(`${prefix}${i % keys}`, body));
      const gets = await rate(seconds, inflight, async (i) => {
        const got = await client.get(`${prefix}${i % keys}`);
        if (got.length !== size) throw new Error(`GET returned ${got.length} bytes`);
      });
      out[name] = { putsPerSec: puts, getsPerSec: gets };
      client.close();
    }
  } finally {
    endpoint.stop();
  }
  return { size, inflight, ...out };
}

export const percent = (a, b) => `${Math.round((100 * a) / b)} %`;

/** The figures as a Markdown table, as the README shows them. */
export function formatRequests(r) {
  const line = (verb, key) =>
    `| ${verb} | ${r.raw[key].toFixed(0)}/s | ${r.ours[key].toFixed(0)}/s | ${percent(r.ours[key], r.raw[key])} |`;
  return [
    '',
    `${r.size / 1024} KiB objects, ${r.inflight} in flight, in-memory S3 on loopback, 0 ms per request.`,
    '',
    '| requests | raw node:http, unsigned (ceiling) | our S3 request path, signed | ours / raw |',
    '| --- | --- | --- | --- |',
    line('PUT', 'putsPerSec'),
    line('GET', 'getsPerSec'),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const r = await measureRequests({ seconds: arg('seconds', 4), inflight: arg('inflight', 32), size: arg('size', 65536) });
  console.log(formatRequests(r));
}
