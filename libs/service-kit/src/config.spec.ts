import { z } from 'zod';
import { booleanFromEnv, ConfigError, durationMsSchema, loadConfig, portSchema } from './config';

const schema = z.object({
  NATS_URL: z.string().url(),
  INGEST_GRPC_PORT: portSchema,
  OPS_HTTP_PORT: portSchema.default(9464),
  SHUTDOWN_GRACE_MS: durationMsSchema.default(10_000),
  REFLECTION_ENABLED: booleanFromEnv.default(false),
  INGEST_API_TOKEN: z.string().min(32),
});

function errorOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('parses and coerces valid variables, applying defaults and ignoring unrelated ones', () => {
    const config = loadConfig(schema, {
      NATS_URL: 'nats://localhost:4222',
      INGEST_GRPC_PORT: '50051',
      SHUTDOWN_GRACE_MS: '15s',
      REFLECTION_ENABLED: 'YES',
      INGEST_API_TOKEN: 'x'.repeat(32),
      PATH: '/usr/bin',
    });
    expect(config).toEqual({
      NATS_URL: 'nats://localhost:4222',
      INGEST_GRPC_PORT: 50051,
      OPS_HTTP_PORT: 9464,
      SHUTDOWN_GRACE_MS: 15_000,
      REFLECTION_ENABLED: true,
      INGEST_API_TOKEN: 'x'.repeat(32),
    });
  });

  it('names every bad variable with its reason in one error', () => {
    const error = errorOf(() =>
      loadConfig(schema, {
        INGEST_GRPC_PORT: 'abc',
        OPS_HTTP_PORT: '70000',
        SHUTDOWN_GRACE_MS: 'soon',
        REFLECTION_ENABLED: 'maybe',
        INGEST_API_TOKEN: 'short',
      }),
    );
    expect(error.message).toMatch(/^Invalid configuration: /);
    expect(error.message).toContain('NATS_URL: required');
    expect(error.message).toContain('INGEST_GRPC_PORT: expected a number from 0 to 65535, got "abc"');
    expect(error.message).toContain('OPS_HTTP_PORT: expected a number from 0 to 65535, got "70000"');
    expect(error.message).toContain('SHUTDOWN_GRACE_MS: expected a duration');
    expect(error.message).toContain('got "soon"');
    expect(error.message).toContain('REFLECTION_ENABLED: expected one of true, false, 1, 0, yes, no, got "maybe"');
    expect(error.message).toContain('INGEST_API_TOKEN: ');
  });

  it('never shows the value of a secret-looking variable', () => {
    const schemaWithSecrets = z.object({
      DB_PASSWORD: z.string().min(20),
      SIGNING_KEY: z.string().refine((value) => value.startsWith('k_'), { error: 'must start with k_' }),
      ECHOING_SECRET: z.string().refine(() => false, { error: 'value hunter2-secret is not allowed' }),
    });
    const error = errorOf(() =>
      loadConfig(schemaWithSecrets, {
        DB_PASSWORD: 'hunter2-password',
        SIGNING_KEY: 'hunter2-key',
        ECHOING_SECRET: 'hunter2-secret',
      }),
    );
    expect(error.message).toContain('DB_PASSWORD: ');
    expect(error.message).toContain('SIGNING_KEY: must start with k_, got <redacted>');
    expect(error.message).toContain('ECHOING_SECRET: value <redacted> is not allowed, got <redacted>');
    expect(error.message).not.toContain('hunter2');
  });

  it('treats empty values as unset', () => {
    expect(() => loadConfig(z.object({ PORT: portSchema }), { PORT: '' })).toThrow('PORT: required');
    expect(loadConfig(z.object({ PORT: portSchema.default(8080) }), { PORT: '' })).toEqual({ PORT: 8080 });
  });
});

describe('config helpers', () => {
  it('durationMsSchema reads plain milliseconds and units', () => {
    expect(durationMsSchema.parse('250')).toBe(250);
    expect(durationMsSchema.parse('250ms')).toBe(250);
    expect(durationMsSchema.parse('1.5s')).toBe(1500);
    expect(durationMsSchema.parse('2m')).toBe(120_000);
    expect(durationMsSchema.parse('1h')).toBe(3_600_000);
    expect(durationMsSchema.safeParse('-5s').success).toBe(false);
    expect(durationMsSchema.safeParse('10 days').success).toBe(false);
  });

  it('booleanFromEnv accepts only the listed words', () => {
    for (const word of ['true', '1', 'yes', 'TRUE']) expect(booleanFromEnv.parse(word)).toBe(true);
    for (const word of ['false', '0', 'no', 'No']) expect(booleanFromEnv.parse(word)).toBe(false);
    expect(booleanFromEnv.safeParse('on').success).toBe(false);
  });

  it('portSchema rejects fractions and out-of-range numbers', () => {
    expect(portSchema.parse('0')).toBe(0);
    expect(portSchema.parse('65535')).toBe(65535);
    expect(portSchema.safeParse('80.5').success).toBe(false);
    expect(portSchema.safeParse('-1').success).toBe(false);
  });
});
