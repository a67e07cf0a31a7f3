import * as testing from './index';

describe('@tollstream/testing public API', () => {
  it('exports the harness functions', () => {
    for (const name of [
      'startNats',
      'createWarehouse',
      'mongoAvailability',
      'describeWithMongo',
      'dockerAvailable',
      'freePort',
      'startProcess',
      'tempDir',
      'waitFor',
    ] as const) {
      expect(typeof testing[name]).toBe('function');
    }
  });

  it('infers waitFor result types from sync and async probes', async () => {
    const fromAsync: number = await testing.waitFor(async () => 5);
    const fromSync: string = await testing.waitFor(() => (Math.random() >= 0 ? 'ok' : undefined));
    expect([fromAsync, fromSync]).toEqual([5, 'ok']);
  });
});
