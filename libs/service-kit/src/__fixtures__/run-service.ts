// Child process for lifecycle.spec.ts. FIXTURE_MODE: "ok" (default), "bad-config" or "unhandled-rejection";
// FIXTURE_STOP_MS: how long stop() takes; FIXTURE_GRACE_MS: the shutdown grace period.
import { z } from 'zod';
import { loadConfig, portSchema } from '../config';
import { runService } from '../lifecycle';
import { createLogger } from '../logger';

const logger = createLogger({ service: 'fixture' });
const stopMs = Number(process.env['FIXTURE_STOP_MS'] ?? '0');

void runService({
  name: 'fixture',
  logger,
  shutdownGraceMs: Number(process.env['FIXTURE_GRACE_MS'] ?? '1000'),
  start: async () => {
    if (process.env['FIXTURE_MODE'] === 'bad-config') {
      loadConfig(z.object({ FIXTURE_PORT: portSchema, FIXTURE_SECRET: z.string().min(50) }), {
        FIXTURE_PORT: 'abc',
        FIXTURE_SECRET: 'hunter2',
      });
    }
    if (process.env['FIXTURE_MODE'] === 'unhandled-rejection') {
      setTimeout(() => void Promise.reject(new Error('lost promise')), 50);
    }
    // Stands in for a server: something that keeps the event loop alive until stopped.
    const keepAlive = setInterval(() => undefined, 1000);
    return {
      stop: async () => {
        logger.info('stop called');
        await new Promise((resolve) => setTimeout(resolve, stopMs));
        clearInterval(keepAlive);
        logger.info('stop finished');
      },
    };
  },
});
