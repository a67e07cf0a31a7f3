import { loadConfig } from '@tollstream/service-kit';
import { windowerConfigSchema } from './config';

describe('windower configuration', () => {
  it('defaults serve the product: half-second spend windows, 30-minute station slots', () => {
    const config = loadConfig(windowerConfigSchema, {});
    expect(config.SPEND_WINDOW).toEqual({ kind: 'tumbling', sizeMs: 500 });
    expect(config.TRAFFIC_WINDOW).toEqual({ kind: 'tumbling', sizeMs: 30 * 60_000 });
    expect(config.WINDOWER_LEASE_TTL).toBeLessThan(30_000);
    expect(config.OPERATOR_TIME_ZONE).toBe('UTC');
  });

  it('the reference design (10-minute tumbling spend windows) is one variable away', () => {
    expect(loadConfig(windowerConfigSchema, { SPEND_WINDOW: 'tumbling:10m' }).SPEND_WINDOW).toEqual({ kind: 'tumbling', sizeMs: 600_000 });
  });

  it('names every bad variable and why', () => {
    expect(() =>
      loadConfig(windowerConfigSchema, {
        SPEND_WINDOW: 'weekly',
        OPERATOR_TIME_ZONE: 'Mars/Base',
        WINDOWER_LEASE_TTL: '2s',
        WINDOWER_LEASE_RENEW_INTERVAL: '2s',
      }),
    ).toThrow(/SPEND_WINDOW: .*expected tumbling.*OPERATOR_TIME_ZONE: .*not an IANA time zone/);
    expect(() => loadConfig(windowerConfigSchema, { WINDOWER_LEASE_TTL: '2s', WINDOWER_LEASE_RENEW_INTERVAL: '2s' })).toThrow(
      /WINDOWER_LEASE_RENEW_INTERVAL.*at most half of WINDOWER_LEASE_TTL/,
    );
  });
});
