import { createServer } from 'node:net';

/** Ports handed out recently by this process; avoids giving the same port to two callers in a row. */
const recentlyHandedOut: number[] = [];
const RECENT_LIMIT = 64;

function bindEphemeralPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close(() => {
        if (port === undefined) reject(new Error('freePort: the OS did not report a bound port'));
        else resolve(port);
      });
    });
  });
}

/**
 * A TCP port that is free on 127.0.0.1 right now (found by binding port 0).
 * The usual race applies: bind it soon. Never returns a port this process handed out recently.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const port = await bindEphemeralPort(host);
    if (!recentlyHandedOut.includes(port)) {
      recentlyHandedOut.push(port);
      if (recentlyHandedOut.length > RECENT_LIMIT) recentlyHandedOut.shift();
      return port;
    }
  }
  throw new Error('freePort: could not find a port that was not handed out recently');
}

/** True when nothing listens on host:port (a bind succeeds). */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
