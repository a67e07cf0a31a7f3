import { readFileSync } from 'node:fs';
import type { Alert } from '@tollstream/contracts';
import { z } from 'zod';

export type AlertKindName = 'spending' | 'traffic';

const targetSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'must be 1 to 64 letters, digits, _ or -' }),
    url: z.url({ protocol: /^https?$/ }),
    secretFile: z.string().min(1).optional(),
    secretEnv: z.string().min(1).optional(),
    alertKinds: z.array(z.enum(['spending', 'traffic'])).min(1),
    /** Only alerts of these stations (traffic alerts); all when absent. */
    stations: z.array(z.string().min(1)).min(1).optional(),
    /** Per-attempt timeout override. */
    timeoutMs: z.number().int().min(100).max(120_000).optional(),
  })
  .strict()
  .refine((target) => (target.secretFile === undefined) !== (target.secretEnv === undefined), {
    message: 'set exactly one of secretFile and secretEnv',
    path: ['secretFile'],
  });

const targetsSchema = z.array(targetSchema).superRefine((targets, context) => {
  const names = new Set<string>();
  targets.forEach((target, index) => {
    if (names.has(target.name)) context.addIssue({ code: 'custom', message: `duplicate target name ${target.name}`, path: [index, 'name'] });
    names.add(target.name);
  });
});

/** A configured webhook receiver with its secret resolved (never logged). */
export interface WebhookTarget {
  name: string;
  url: string;
  secret: string;
  alertKinds: AlertKindName[];
  stations?: string[];
  timeoutMs?: number;
}

/** Reads NOTIFIER_WEBHOOKS_FILE; errors name the target and field, never a secret. */
export function loadWebhookTargets(file: string, env: NodeJS.ProcessEnv = process.env): WebhookTarget[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`webhooks file ${file}: ${(error as Error).message}`);
  }
  const parsed = targetsSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`webhooks file ${file}: ${parsed.error.issues.map((issue) => `[${issue.path.join('.')}] ${issue.message}`).join('; ')}`);
  }
  return parsed.data.map((target) => {
    let secret: string | undefined;
    if (target.secretFile) {
      try {
        secret = readFileSync(target.secretFile, 'utf8').trim();
      } catch (error) {
        throw new Error(`webhook ${target.name}: secretFile ${target.secretFile}: ${(error as Error).message}`);
      }
    } else {
      secret = env[target.secretEnv as string];
      if (secret === undefined) throw new Error(`webhook ${target.name}: environment variable ${target.secretEnv} is not set`);
    }
    if (secret.length < 16) throw new Error(`webhook ${target.name}: the secret must be at least 16 characters`);
    return { name: target.name, url: target.url, secret, alertKinds: target.alertKinds, stations: target.stations, timeoutMs: target.timeoutMs };
  });
}

export function alertKindOf(alert: Alert): AlertKindName | undefined {
  if (alert.spendingThresholdBreached) return 'spending';
  if (alert.stationTraffic) return 'traffic';
  return undefined;
}

/** The routing rule: the target takes the alert's kind and, if it lists stations, the alert's station. */
export function targetsFor(alert: Alert, targets: readonly WebhookTarget[]): WebhookTarget[] {
  const kind = alertKindOf(alert);
  if (!kind) return [];
  return targets.filter((target) => {
    if (!target.alertKinds.includes(kind)) return false;
    if (!target.stations) return true;
    const station = alert.stationTraffic?.stationId;
    return station !== undefined && target.stations.includes(station);
  });
}
