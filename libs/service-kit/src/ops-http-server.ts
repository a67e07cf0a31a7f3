import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from './logger';
import type { ServiceTls } from './tls';

export interface OpsHttpServerOptions {
  host?: string;
  /** 0 picks a free port; the bound one is in the result. */
  port: number;
  registry: Registry;
  isReady: () => boolean | Promise<boolean>;
  logger: Logger;
  /**
   * Extra endpoints of the service by exact path (any method; the handler answers), e.g. the warehouse
   * loader's authenticated read-only POST /query. Checked before the built-in paths.
   */
  routes?: Record<string, (request: IncomingMessage, response: ServerResponse) => Promise<void>>;
  /**
   * HTTPS with the service's certificate (reloaded with it) when given and its opsHttp is set. Never
   * asks for a client certificate: kubelet probes and most scrapers cannot present one.
   */
  tls?: ServiceTls;
}

export interface OpsHttpServer {
  port: number;
  close(): Promise<void>;
}

/** Serves /metrics, /healthz (liveness) and /readyz (readiness) for Prometheus and Kubernetes probes. */
export async function startOpsHttpServer(options: OpsHttpServerOptions): Promise<OpsHttpServer> {
  const { registry, isReady, logger } = options;

  const listener: RequestListener = (request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error({ err: error, path: request.url }, 'ops endpoint failed');
      if (!response.headersSent) sendJson(response, 500, { status: 'error' });
      else response.destroy();
    });
  };
  if (options.tls) registerCertificateExpiry(registry, options.tls);
  const certificates = options.tls?.opsHttp ? options.tls.certificates : undefined;
  let stopReloading = (): void => undefined;
  let server: Server;
  if (certificates) {
    const httpsServer = createHttpsServer(certificates.serverContextOptions(), listener);
    stopReloading = certificates.onServerContextChange((context) => httpsServer.setSecureContext(context));
    server = httpsServer;
  } else {
    server = createServer(listener);
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const route = options.routes && Object.hasOwn(options.routes, path) ? options.routes[path] : undefined;
    if (route) {
      await route(request, response);
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      sendJson(response, 405, { status: 'method not allowed' }, { allow: 'GET, HEAD' });
      return;
    }
    switch (path) {
      case '/metrics': {
        const body = await registry.metrics();
        response.writeHead(200, { 'content-type': registry.contentType });
        response.end(request.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/healthz':
        // Answering at all means the event loop is alive; that is all liveness should check.
        sendJson(response, 200, { status: 'ok' });
        return;
      case '/readyz': {
        let ready = false;
        try {
          ready = await isReady();
        } catch (error) {
          logger.warn({ err: error }, 'readiness check failed');
        }
        sendJson(response, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' });
        return;
      }
      default:
        sendJson(response, 404, { status: 'not found' });
    }
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      stopReloading();
      reject(error);
    };
    server.once('error', onError);
    // Without a host node listens on every interface (IPv6 and IPv4 where available).
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (error) => logger.error({ err: error }, 'ops http server error'));

  const port = (server.address() as AddressInfo).port;
  logger.info({ port, tls: certificates !== undefined }, 'ops http server listening');

  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        stopReloading();
        server.close((error) => (error ? reject(error) : resolve()));
        // Prometheus keeps connections alive; without this close() would wait for them to time out.
        server.closeAllConnections();
      }),
  };
}

const CERTIFICATE_EXPIRY_METRIC = 'tollstream_tls_certificate_expiry_timestamp_seconds';

/** The served certificate's notAfter, so an alert fires when a renewal did not reach the pod (ADR 0017). */
function registerCertificateExpiry(registry: Registry, tls: ServiceTls): void {
  if (registry.getSingleMetric(CERTIFICATE_EXPIRY_METRIC)) return;
  new Gauge({
    name: CERTIFICATE_EXPIRY_METRIC,
    help: 'When the TLS certificate the service serves expires (Unix seconds); it moves forward when a renewed certificate is loaded.',
    registers: [registry],
    collect() {
      const notAfter = tls.certificates.notAfter;
      if (notAfter) this.set(notAfter.getTime() / 1000);
    },
  });
}

function sendJson(response: ServerResponse, statusCode: number, body: object, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(statusCode, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  response.end(text);
}
