/**
 * The agent's HTTP endpoint: `/healthz` (the process answers), `/readyz` (the caller's readiness
 * check passes) and `/metrics` (Prometheus text format). Nothing else is served.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface StatusServerOptions {
  /** `:9396`, `127.0.0.1:9396`, `[::1]:9396`; port 0 picks a free port (tests) */
  address: string;
  registry: Registry;
  /** null when ready, else why not (shown in the /readyz body) */
  notReadyReason: () => string | null;
  /** the /readyz body when ready (default `ready`) */
  readyText?: string;
}

/** `[host]:port` → host (undefined: every interface) and port; throws naming the address otherwise. */
export function parseListenAddress(address: string): { host: string | undefined; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address.trim());
  if (!match) throw new Error(`invalid listen address "${address}": expected [host]:port, e.g. :9396`);
  const host = match[1] ?? match[2];
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`invalid listen address "${address}": port ${port} is out of range`);
  return { host: host === '' ? undefined : host, port };
}

export class StatusServer {
  private constructor(private readonly server: Server) {}

  static async start(options: StatusServerOptions): Promise<StatusServer> {
    const { host, port } = parseListenAddress(options.address);
    const server = createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (url === '/readyz') {
        const reason = options.notReadyReason();
        res
          .writeHead(reason === null ? 200 : 503, { 'content-type': 'text/plain' })
          .end(`${reason ?? options.readyText ?? 'ready'}\n`);
      } else if (url === '/metrics') {
        options.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
        );
      } else {
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('not found: try /metrics, /healthz or /readyz\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new StatusServer(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
