import { loadConfig } from '@tollstream/service-kit';
import { billingConfigSchema } from './config';

describe('billing-threshold configuration', () => {
  it('has working defaults once the mobile backend credential is given', () => {
    const config = loadConfig(billingConfigSchema, { ACCOUNT_API_TOKEN_FILE: '/run/secrets/token' });
    expect(config).toMatchObject({
      BILLING_STORE: 'nats-kv',
      BILLING_GRPC_PORT: 50053,
      OPERATOR_TIME_ZONE: 'UTC',
      BILLING_LEDGER_RETENTION: 35 * 86_400_000,
      BILLING_ACK_WAIT: 30_000,
    });
  });

  it('names every bad variable, and never echoes a token', () => {
    expect(() => loadConfig(billingConfigSchema, {})).toThrow(/ACCOUNT_API_TOKEN_FILE: required/);
    expect(() => loadConfig(billingConfigSchema, { ACCOUNT_API_TOKEN_FILE: '/t', BILLING_STORE: 'mongodb' })).toThrow(/MONGODB_URI: required/);
    expect(() => loadConfig(billingConfigSchema, { ACCOUNT_API_TOKEN_FILE: '/t', OPERATOR_TIME_ZONE: 'Mars/Olympus' })).toThrow(/OPERATOR_TIME_ZONE: not an IANA time zone/);
    let message = '';
    try {
      loadConfig(billingConfigSchema, { ACCOUNT_API_TOKEN: 'short-secret' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/ACCOUNT_API_TOKEN: must be at least 16 characters/);
    expect(message).not.toContain('short-secret');
  });
});
