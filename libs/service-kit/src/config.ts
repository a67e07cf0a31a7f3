import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** Thrown by loadConfig; the message names every bad variable so an operator can fix them all at once. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

// Values of these variables never appear in messages or logs.
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|KEY|CREDENTIAL/i;

export const portSchema = z.coerce
  .number({ error: 'expected a number from 0 to 65535' })
  .int({ error: 'expected a number from 0 to 65535' })
  .min(0, { error: 'expected a number from 0 to 65535' })
  .max(65535, { error: 'expected a number from 0 to 65535' });

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_HINT = 'expected a duration such as 500ms, 30s, 5m, 1h, 1d or a plain number of milliseconds';

/** A duration in milliseconds; accepts "1500", "1500ms", "30s", "5m", "1h" (and numbers, for defaults). */
export const durationMsSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
    ctx.addIssue({ code: 'custom', message: DURATION_HINT });
    return z.NEVER;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(value);
  if (!match) {
    ctx.addIssue({ code: 'custom', message: DURATION_HINT });
    return z.NEVER;
  }
  const unit = (match[2] ?? 'ms').toLowerCase();
  return Math.round(Number(match[1]) * DURATION_UNITS_MS[unit]);
});

/** A boolean flag; z.coerce.boolean() would turn "false" into true, so the accepted words are explicit. */
export const booleanFromEnv = z.stringbool({
  truthy: ['true', '1', 'yes'],
  falsy: ['false', '0', 'no'],
  error: 'expected one of true, false, 1, 0, yes, no',
});

/**
 * Reads and validates configuration from the environment. The schema's keys are the variable names.
 * Empty values count as unset: `FOO=` in env files and Helm templates means "not provided", and
 * z.coerce.number() would otherwise read "" as 0.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // Only the variables the schema knows about, so strict schemas do not trip over the rest of the environment.
  const input: Record<string, string> = {};
  for (const name of Object.keys(schema.shape)) {
    const value = env[name];
    if (value !== undefined && value !== '') input[name] = value;
  }

  const result = schema.safeParse(input);
  if (result.success) return result.data;

  const reasonsByName = new Map<string, string[]>();
  for (const issue of result.error.issues) {
    const name = issue.path.length > 0 ? issue.path.map(String).join('.') : '(configuration)';
    const variable = String(issue.path[0] ?? '');
    const reasons = reasonsByName.get(name) ?? [];
    reasons.push(describeIssue(issue.message, variable, input[variable]));
    reasonsByName.set(name, reasons);
  }
  const parts = [...reasonsByName].map(([name, reasons]) => `${name}: ${[...new Set(reasons)].join(', ')}`);
  throw new ConfigError(`Invalid configuration: ${parts.join('; ')}`);
}

function describeIssue(message: string, variable: string, value: string | undefined): string {
  if (variable === '') return message; // a rule across several variables, e.g. an object-level refine
  if (value === undefined) return 'required';
  if (!SECRET_NAME.test(variable)) return `${message}, got ${JSON.stringify(value)}`;
  // A custom refinement may echo the input; a secret must not leak through it.
  return `${message.split(value).join('<redacted>')}, got <redacted>`;
}

/**
 * A service credential configured as a file (a mounted secret, `<NAME>_FILE`) or, for local runs, as
 * the value itself: reads the file when given; a problem is a ConfigError naming the variable.
 */
export function loadServiceToken(file: string | undefined, value: string | undefined, fileVariable: string): string {
  if (!file) {
    if (value === undefined) throw new ConfigError(`${fileVariable}: required (or the token itself in ${fileVariable.replace(/_FILE$/, '')})`);
    return value;
  }
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(`${fileVariable} ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (token.length < 16) throw new ConfigError(`${fileVariable} ${file}: the token must be at least 16 characters`);
  return token;
}
