import { startNats, startWindower, type NatsHandle } from '@tollstream/testing';

describe('windower configuration changes (real nats-server)', () => {
  let nats: NatsHandle;
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await nats.stop();
  });

  it('refuses to start with other window settings than the published results were computed with, unless told to recompute', async () => {
    const first = await startWindower({ natsUrl: nats.url, env: { SPEND_WINDOW: 'tumbling:1s' } });
    await first.stop();

    const refused = startWindower({ natsUrl: nats.url, env: { SPEND_WINDOW: 'tumbling:10m' }, readyTimeoutMs: 30_000 });
    await expect(refused).rejects.toThrow(/WINDOWER_ON_CONFIGURATION_CHANGE: the window configuration differs .*billing would add them/);

    // The same settings as before start as usual.
    const same = await startWindower({ natsUrl: nats.url, env: { SPEND_WINDOW: 'tumbling:1s' } });
    await same.stop();

    const recomputing = await startWindower({
      natsUrl: nats.url,
      env: { SPEND_WINDOW: 'tumbling:10m', WINDOWER_ON_CONFIGURATION_CHANGE: 'recompute' },
    });
    await recomputing.stop();
    // From now on the new settings are the ones in force.
    const after = await startWindower({ natsUrl: nats.url, env: { SPEND_WINDOW: 'tumbling:10m' } });
    await after.stop();
  }, 120_000);
});
