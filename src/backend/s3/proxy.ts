// HTTP proxies from the environment, read as libcurl reads them: upstream s3backer talks to S3
// through libcurl, so a machine that reaches S3 only through a proxy has these variables set, and
// a mount that worked there with upstream must work with us. http:// proxies only: absolute-form
// requests for http:// endpoints, a CONNECT tunnel for https:// ones.

import * as net from 'node:net';
import { ConfigError } from '../../errors';

export interface Proxy {
  readonly host: string;
  readonly port: number;
  /** The Proxy-Authorization value when the proxy URL carries a user name. */
  readonly authorization: string | undefined;
  /** The proxy's URL without its password, for messages. */
  readonly display: string;
  /** The variable it came from. */
  readonly variable: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** libcurl's port for a proxy URL that names none. */
const DEFAULT_PROXY_PORT = 1080;

/**
 * The proxy for requests to `target`, or undefined for a direct connection. As libcurl: an
 * http:// target uses http_proxy (lower case only: HTTP_PROXY can be set by a CGI request),
 * https:// uses https_proxy or HTTPS_PROXY; both fall back to all_proxy or ALL_PROXY; no_proxy
 * (or NO_PROXY) lists the hosts to reach directly. Throws on a proxy URL that cannot be used.
 */
export function proxyFor(target: URL, env: Env = process.env): Proxy | undefined {
  const names = target.protocol === 'https:' ? ['https_proxy', 'HTTPS_PROXY'] : ['http_proxy'];
  names.push('all_proxy', 'ALL_PROXY');
  const variable = names.find((n) => (env[n] ?? '') !== '');
  if (variable === undefined) return undefined;
  if (bypassed(target.hostname.replace(/^\[|\]$/g, ''), env.no_proxy ?? env.NO_PROXY ?? '')) return undefined;
  return parseProxy(env[variable]!, variable);
}

function parseProxy(value: string, variable: string): Proxy {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`; // libcurl: no scheme means http
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${variable} is not a proxy URL (http://[user:password@]host[:port])`); // not echoed: it may hold a password
  }
  if (url.protocol !== 'http:') {
    throw new ConfigError(
      `${variable}: ${url.protocol}// proxies are not supported, only http:// ones (unset ${variable} or name an http:// proxy)`,
    );
  }
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const port = url.port === '' ? DEFAULT_PROXY_PORT : Number(url.port);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    host,
    port,
    authorization: user === '' && password === '' ? undefined : `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    display: `http://${user === '' ? '' : `${url.username}@`}${url.host}`,
    variable,
  };
}

/**
 * Whether no_proxy names `host`: '*' names every host; an entry names itself and, as a domain,
 * the names below it (a leading dot changes nothing); an IP address entry names that address,
 * and with /bits the addresses of that network.
 */
export function bypassed(host: string, noProxy: string): boolean {
  const entries = noProxy
    .split(/[\s,]+/)
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '');
  const name = host.toLowerCase().replace(/\.$/, '');
  const family = net.isIP(name);
  for (const raw of entries) {
    if (raw === '*') return true;
    const entry = raw.replace(/^\[|\]$/g, '');
    if (family !== 0) {
      const [address, bits] = entry.split('/');
      const entryFamily = net.isIP(address ?? '');
      if (entryFamily !== family) continue;
      if (bits === undefined) {
        if (sameAddress(name, address!, family)) return true;
        continue;
      }
      const prefix = Number(bits);
      if (!Number.isInteger(prefix)) continue;
      const list = new net.BlockList();
      try {
        list.addSubnet(address!, prefix, family === 6 ? 'ipv6' : 'ipv4');
      } catch {
        continue; // a prefix out of range names nothing
      }
      if (list.check(name, family === 6 ? 'ipv6' : 'ipv4')) return true;
      continue;
    }
    const domain = entry.replace(/^\./, '').replace(/\.$/, '');
    if (domain !== '' && (name === domain || name.endsWith(`.${domain}`))) return true;
  }
  return false;
}

function sameAddress(a: string, b: string, family: number): boolean {
  const list = new net.BlockList();
  list.addAddress(b, family === 6 ? 'ipv6' : 'ipv4');
  return list.check(a, family === 6 ? 'ipv6' : 'ipv4');
}
