// The node:http agent under the SDK client that lists the bucket (block requests have their own
// sockets, httpConnections.ts): keep-alive, the TLS options, the same proxy and the same
// --ipTOS as block requests.

import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { openTunnel } from './httpConnections';
import type { Proxy } from './proxy';
import type { TlsTrust } from './trust';
import { applyTypeOfService } from './typeOfService';

export interface SdkAgentOptions {
  readonly protocol: 'http:' | 'https:';
  readonly tls: TlsTrust;
  readonly proxy: Proxy | undefined;
  /** Limit on opening a tunnel through the proxy. */
  readonly timeoutMs: number;
  /** --ipTOS, and where a failure to set it is told. */
  readonly typeOfService?: number | undefined;
  readonly warn?: ((message: string) => void) | undefined;
  /** Sockets kept per host: the listing requests that may be in flight at once. */
  readonly maxSockets: number;
}

type ConnectCallback = (err: Error | null, socket: Duplex) => void;

/** https through a proxy: each socket is TLS inside a CONNECT tunnel. */
class TunnelAgent extends https.Agent {
  constructor(
    options: https.AgentOptions,
    private readonly proxy: Proxy,
    private readonly timeoutMs: number,
  ) {
    super(options);
  }

  // node:http's agent takes the socket from the callback when createConnection returns nothing.
  override createConnection(options: http.ClientRequestArgs, callback?: ConnectCallback): undefined {
    const host = options.hostname ?? options.host ?? 'localhost';
    const port = Number(options.port ?? 443);
    const tlsOptions = options as tls.ConnectionOptions;
    openTunnel(this.proxy, host, port, this.timeoutMs).then(
      (raw) => callback?.(null, tls.connect({ ...tlsOptions, socket: raw, host, servername: net.isIP(host) === 0 ? host : undefined })),
      // On failure node:http's callback takes the error alone.
      (err: Error) => (callback as ((err: Error) => void) | undefined)?.(err),
    );
    return undefined;
  }
}

/** http through a proxy: sockets go to the proxy, and each request names its whole URL. */
class ForwardAgent extends http.Agent {
  constructor(
    options: http.AgentOptions,
    private readonly proxy: Proxy,
  ) {
    super(options);
  }

  // Called before the request head is written, so its path can still become the absolute form.
  addRequest(req: http.ClientRequest, options: http.RequestOptions): void {
    const host = options.hostname ?? options.host ?? 'localhost';
    const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${options.port ?? 80}`;
    if (!req.path.startsWith('http://')) req.path = `http://${authority}${req.path}`;
    if (this.proxy.authorization !== undefined) req.setHeader('proxy-authorization', this.proxy.authorization);
    const base = http.Agent.prototype as unknown as { addRequest(req: http.ClientRequest, options: http.RequestOptions): void };
    base.addRequest.call(this, req, { ...options, host: this.proxy.host, hostname: this.proxy.host, port: this.proxy.port });
  }
}

export function createSdkAgent(options: SdkAgentOptions): http.Agent {
  const keepAlive = { keepAlive: true, maxSockets: options.maxSockets };
  const { rejectUnauthorized, secureContext } = options.tls;
  const tlsOptions = { rejectUnauthorized, ...(secureContext !== undefined ? { secureContext } : {}) };
  const { proxy } = options;
  const agent =
    options.protocol === 'https:'
      ? proxy === undefined
        ? new https.Agent({ ...keepAlive, ...tlsOptions })
        : new TunnelAgent({ ...keepAlive, ...tlsOptions }, proxy, options.timeoutMs)
      : proxy === undefined
        ? new http.Agent(keepAlive)
        : new ForwardAgent(keepAlive, proxy);
  const tos = options.typeOfService;
  if (tos !== undefined) {
    let warned = false;
    const warn = (message: string): void => {
      if (!warned) options.warn?.(message);
      warned = true;
    };
    // Each new socket, whether the agent returns it or hands it to the callback (tunnels).
    const create = agent.createConnection.bind(agent);
    agent.createConnection = (opts: http.ClientRequestArgs, callback?: ConnectCallback) => {
      const socket = create(opts, (err: Error | null, s: Duplex) => {
        if (err === null && socket === undefined) applyTypeOfService(s as net.Socket, tos, warn);
        callback?.(err, s);
      });
      if (socket !== undefined) applyTypeOfService(socket as net.Socket, tos, warn);
      return socket;
    };
  }
  return agent;
}
