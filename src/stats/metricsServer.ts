// --metricsPort: GET /metrics (Prometheus text) and GET /stats.json, on 127.0.0.1 unless
// --metricsAddress says otherwise.
// The port is bound before the mount marks the bucket mounted (a port in use fails the mount
// cleanly); it answers 503 until serve() is called once the FUSE mount is up.

import type * as http from 'node:http';
import { PROMETHEUS_CONTENT_TYPE, type StatsJSON } from './prometheus';
import { ConfigError } from '../errors';

/** Loopback by default: the statistics are not for other machines unless the user says so. */
export const METRICS_HOST = '127.0.0.1';

export interface MetricsProvider {
  prometheus(): string;
  json(): StatsJSON;
}

export class MetricsServer {
  private provider: MetricsProvider | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
    readonly host: string,
  ) {}

  /** The base URL it answers on. */
  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /** Binds host:port; a port in use (or not allowed, or an address not this machine's) is a ConfigError. */
  static async listen(port: number, host: string = METRICS_HOST): Promise<MetricsServer> {
    // Loaded here: a mount without --metricsPort does not load node:http.
    const { createServer } = await import('node:http');
    return new Promise((resolve, reject) => {
      let self: MetricsServer | undefined;
      const server = createServer((req, res) => self?.answer(req, res));
      server.keepAliveTimeout = 5000;
      server.requestTimeout = 10000;
      server.once('error', (err: NodeJS.ErrnoException) => {
        const why =
          err.code === 'EADDRINUSE'
            ? 'is already in use'
            : err.code === 'EACCES'
              ? 'is not allowed (ports below 1024 need privileges)'
              : err.code === 'EADDRNOTAVAIL'
                ? "cannot be opened: the address is not one of this machine's"
                : `cannot be opened (${err.code ?? err.message})`;
        reject(new ConfigError(`--metricsPort: port ${port} on ${host} ${why}`));
      });
      server.listen({ port, host, exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', () => {}); // a failed client connection must not end the mount
        const address = server.address();
        self = new MetricsServer(server, typeof address === 'object' && address !== null ? address.port : port, host);
        resolve(self);
      });
    });
  }

  /** Starts answering with these statistics. */
  serve(provider: MetricsProvider): void {
    this.provider = provider;
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const send = (status: number, type: string, body: string, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/metrics' && path !== '/stats.json')
      return send(404, 'text/plain; charset=utf-8', 'not found: try /metrics or /stats.json\n');
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
    const provider = this.provider;
    if (provider === undefined) return send(503, 'text/plain; charset=utf-8', 'not mounted yet\n');
    try {
      if (path === '/metrics') send(200, PROMETHEUS_CONTENT_TYPE, provider.prometheus());
      else send(200, 'application/json; charset=utf-8', `${JSON.stringify(provider.json(), null, 2)}\n`);
    } catch (err) {
      send(500, 'text/plain; charset=utf-8', `${(err as Error).message}\n`);
    }
  }

  /** Stops listening and drops open connections. */
  close(): Promise<void> {
    this.provider = undefined;
    return (this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    }));
  }
}
