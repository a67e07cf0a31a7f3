import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  BillingShards,
  createAccountService,
  shardAccountBackend,
  SpendApplier,
  SpendConsumer,
  storeAccountBackend,
  type AccountBackend,
  type BillingPolicy,
} from '@tollstream/billing';
import { AccountServiceService, fileDescriptorSetBase64 } from '@tollstream/contracts';
import { connectServiceToBroker, DeadLetterPublisher, shardForAccount } from '@tollstream/messaging';
import {
  Counter,
  createLogger,
  Gauge,
  createMetricsRegistry,
  Histogram,
  loadConfig,
  loadServiceTls,
  loadServiceToken,
  runService,
  startGrpcServer,
  startOpsHttpServer,
} from '@tollstream/service-kit';
import { KvAccountSpendStore, KvAccountStateStore, MongoAccountSpendStore, MongoAccountStateStore, type AccountSpendStore, type AccountStateStore } from '@tollstream/stores';

import { billingConfigSchema } from './config';

const logger = createLogger({ service: 'billing-threshold', level: process.env['LOG_LEVEL'] });

void runService({
  name: 'billing-threshold',
  logger,
  shutdownGraceMs: billingConfigSchema.shape.SHUTDOWN_GRACE_MS.catch(20_000).parse(process.env['SHUTDOWN_GRACE_MS']),
  start: async () => {
    const config = loadConfig(billingConfigSchema);
    const tls = loadServiceTls(config, logger);
    const apiToken = loadServiceToken(config.ACCOUNT_API_TOKEN_FILE, config.ACCOUNT_API_TOKEN, 'ACCOUNT_API_TOKEN_FILE');
    const policy: BillingPolicy = { operatorTimeZone: config.OPERATOR_TIME_ZONE, ledgerRetentionMs: config.BILLING_LEDGER_RETENTION };

    const registry = createMetricsRegistry('billing-threshold');
    const results = new Counter({
      name: 'tollstream_billing_results_total',
      help: 'Window results and late transactions by outcome (applied, amended, duplicate, superseded, currency-mismatch, month-sealed).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    const alerts = new Counter({ name: 'tollstream_billing_alerts_published_total', help: 'Spending-threshold alerts published (re-publications after a crash included).', registers: [registry] });
    const thresholdEvents = new Counter({ name: 'tollstream_billing_threshold_events_published_total', help: 'SpendingThresholdChanged events published.', registers: [registry] });
    const breachLatency = new Histogram({
      name: 'tollstream_billing_breach_latency_seconds',
      help: 'Event time of the breaching transaction to the alert confirmed by the broker (window, windower and billing together).',
      buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 600],
      registers: [registry],
    });
    const roundSeconds = new Histogram({
      name: 'tollstream_billing_round_duration_seconds',
      help: 'One consumption round: decode, store updates, publications, acknowledgements.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    const roundMessages = new Histogram({ name: 'tollstream_billing_round_messages', help: 'Stream messages per round.', buckets: [1, 4, 16, 64, 256, 1024], registers: [registry] });
    const urgentRounds = new Counter({
      name: 'tollstream_billing_urgent_rounds_total',
      help: 'Rounds applied at once, ahead of the queue, because their spend may raise an alert.',
      registers: [registry],
    });
    const failedRounds = new Counter({ name: 'tollstream_billing_failed_rounds_total', help: 'Rounds not acknowledged because applying failed (redelivered).', registers: [registry] });
    const deadLetters = new Counter({ name: 'tollstream_dead_letters_total', help: 'Inputs sent to the dead-letter stream, by reason.', labelNames: ['reason'], registers: [registry] });

    const { nc, js, jsm } = await connectServiceToBroker(config, 'billing-threshold');

    const deadLetterPublisher = new DeadLetterPublisher(js, 'billing-threshold', (reason) => deadLetters.inc({ reason }));
    const engine = config.BILLING_ENGINE === 'shard-state' ? await startShardEngine() : await startPerResultEngine();

    /** ADR 0013: spend shards owned through leases, state in memory, the store written in bulk. */
    async function startShardEngine(): Promise<{ backend: AccountBackend; backendName: string; stop: () => Promise<void> }> {
      const stateStore: AccountStateStore =
        config.BILLING_STORE === 'mongodb'
          ? await MongoAccountStateStore.open({ uri: config.MONGODB_URI as string, database: config.MONGODB_DATABASE })
          : await KvAccountStateStore.open(nc, {
              bucket: config.BILLING_STATE_KV_BUCKET,
              previousLayoutBucket: config.BILLING_STATE_KV_PREVIOUS_BUCKET,
              pagesPerShard: config.BILLING_STATE_PAGES,
              shardOf: (accountId) => shardForAccount(accountId, config.SPEND_SHARDS),
              legacyBucket: config.BILLING_KV_BUCKET,
              replicas: config.NATS_STREAM_REPLICAS,
            });
      const instanceId = config.BILLING_INSTANCE_ID ?? `${hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${randomUUID().slice(0, 8)}`;
      const batches = new Counter({
        name: 'tollstream_billing_spend_batches_total',
        help: 'Spend batches by what the chain of their partition made of them (batch-repeated: a replay; batch-held: before its predecessor; gap-released: a gap given up waiting for).',
        labelNames: ['outcome'],
        registers: [registry],
      });
      const ownedShards = new Gauge({ name: 'tollstream_billing_shards_owned', help: 'Spend shards this instance owns.', registers: [registry] });
      const flushSeconds = new Histogram({
        name: 'tollstream_billing_flush_duration_seconds',
        help: 'One bulk write of the accounts changed since the last flush.',
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [registry],
      });
      const flushedAccounts = new Counter({ name: 'tollstream_billing_flushed_accounts_total', help: 'Account records written to the store by bulk flushes.', registers: [registry] });
      const snapshotSeconds = new Histogram({ name: 'tollstream_billing_snapshot_duration_seconds', help: 'One snapshot of a shard.', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] });
      const snapshotBytes = new Gauge({ name: 'tollstream_billing_snapshot_bytes', help: 'Size of the last snapshot of each shard.', labelNames: ['shard'], registers: [registry] });
      const shards = await BillingShards.open({
        nc,
        js,
        store: stateStore,
        deadLetters: deadLetterPublisher,
        instanceId,
        spendShards: config.SPEND_SHARDS,
        replicas: config.NATS_STREAM_REPLICAS,
        leaseTtlMs: config.BILLING_LEASE_TTL,
        renewIntervalMs: config.BILLING_LEASE_RENEW_INTERVAL,
        shard: { policy, maxThresholdMinor: config.BILLING_MAX_THRESHOLD_MINOR, gapTimeoutMs: config.BILLING_GAP_TIMEOUT, maxHeldBatches: config.BILLING_MAX_HELD_BATCHES },
        runner: {
          snapshotIntervalMs: config.BILLING_SNAPSHOT_INTERVAL,
          flushIntervalMs: config.BILLING_FLUSH_INTERVAL,
          maxPublishesInFlight: config.BILLING_MAX_PUBLISHES_IN_FLIGHT,
          fetchAhead: config.BILLING_FETCH_AHEAD,
        },
        maxUnflushedAccounts: config.BILLING_MAX_UNFLUSHED_ACCOUNTS,
        observer: {
          outcomes: (_shard, outcomes) => {
            for (const [outcome, count] of Object.entries(outcomes)) {
              if (outcome.startsWith('batch-') || outcome === 'gap-released') batches.inc({ outcome }, count);
              else results.inc({ outcome }, count);
            }
          },
          alertPublished: (alertId, latencyMs) => {
            alerts.inc();
            if (latencyMs !== undefined) breachLatency.observe(latencyMs / 1000);
            logger.info({ alertId, breachToAlertMs: latencyMs }, 'spending alert published');
          },
          thresholdEventPublished: () => thresholdEvents.inc(),
          flushed: (_shard, accounts, _months, durationMs) => {
            flushSeconds.observe(durationMs / 1000);
            flushedAccounts.inc(accounts);
          },
          snapshotted: (shard, bytes, durationMs) => {
            snapshotSeconds.observe(durationMs / 1000);
            snapshotBytes.set({ shard: String(shard) }, bytes);
          },
          restored: (shard, fromSequence, accounts, durationMs) => {
            ownedShards.set(shards.ownedShards.length);
            logger.info({ shard, fromSequence, accounts, durationMs: Math.round(durationMs) }, 'spend shard restored; replaying from the next record');
          },
          failed: (shard, error) => logger.error({ err: error, shard }, 'spend shard failed; restarting from its snapshot'),
        },
        onLeaseError: (error) => logger.warn({ err: error }, 'shard lease'),
      });
      // Registered once the shards exist: its collect() reads their pending counts.
      new Gauge({
        name: 'tollstream_billing_shard_pending_records',
        help: 'Records of an owned spend shard not yet applied (the lag of billing behind the windower).',
        labelNames: ['shard'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [shard, pending] of shards.pendingRecords()) this.set({ shard: String(shard) }, pending);
        },
      });
      new Gauge({
        name: 'tollstream_billing_shard_state_size',
        help: 'What an owned spend shard holds in memory: accounts, their open months, and windows that may still be revised (ADR 0013 amendment 5).',
        labelNames: ['shard', 'kind'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [shard, size] of shards.stateSizes()) {
            this.set({ shard: String(shard), kind: 'accounts' }, size.accounts);
            this.set({ shard: String(shard), kind: 'open_months' }, size.openMonths);
            this.set({ shard: String(shard), kind: 'revisable_windows' }, size.revisableWindows);
          }
        },
      });
      await refuseLegacyState(stateStore, shards);
      await shards.start();
      logger.info({ instanceId, spendShards: config.SPEND_SHARDS }, 'billing owns spend shards through leases (ADR 0013)');
      return {
        backend: shardAccountBackend({ nc, js, store: stateStore, spendShards: config.SPEND_SHARDS, commandTimeoutMs: config.BILLING_COMMAND_TIMEOUT, queryTimeoutMs: config.BILLING_QUERY_TIMEOUT }),
        backendName: `shard-state/${stateStore.backend}`,
        stop: async () => {
          await shards.stop();
          ownedShards.set(0);
          await stateStore.close();
        },
      };
    }

    /** No silent double counting: the per-result design's store is either this engine's or refused. */
    async function refuseLegacyState(stateStore: AccountStateStore, shards: BillingShards): Promise<void> {
      if (!(await stateStore.legacyAccountsPresent())) return;
      // The shard engine has state (snapshots; its read model is rebuilt from them when its layout changed).
      if (await shards.hasAnySnapshot()) return;
      for (let shard = 0; shard < config.SPEND_SHARDS; shard++) if ((await stateStore.flushedPosition(shard)) > 0) return;
      const where = config.BILLING_STORE === 'mongodb' ? 'the MongoDB collection billing_accounts' : `the KV bucket ${config.BILLING_KV_BUCKET}`;
      const message =
        `${where} holds accounts of the per-result design (ADR 0008) and the shard state machine has no state yet. ` +
        'Either keep running that design with BILLING_ENGINE=per-result, or move to the shard state machine with ' +
        'BILLING_ON_LEGACY_STATE=rebuild: totals are then rebuilt from TOLL_AGG, and results older than its retention are not counted ' +
        '(see docs/billing.md, "Migrating from the per-result design").';
      if (config.BILLING_ON_LEGACY_STATE === 'refuse') throw new Error(message);
      logger.warn({ where }, 'rebuilding billing state from TOLL_AGG although the per-result store holds accounts (BILLING_ON_LEGACY_STATE=rebuild)');
    }

    /** ADR 0008: one atomic store update per window result (kept for one release). */
    async function startPerResultEngine(): Promise<{ backend: AccountBackend; backendName: string; stop: () => Promise<void> }> {
      const store: AccountSpendStore =
        config.BILLING_STORE === 'mongodb'
          ? await MongoAccountSpendStore.open({ uri: config.MONGODB_URI as string, database: config.MONGODB_DATABASE })
          : await KvAccountSpendStore.open(js, { bucket: config.BILLING_KV_BUCKET, replicas: config.NATS_STREAM_REPLICAS, cachedAccounts: config.BILLING_KV_CACHED_ACCOUNTS, cacheMaxBytes: config.BILLING_KV_CACHE_MAX_BYTES, connection: nc });

      const applier = new SpendApplier({
        store,
        js,
        policy,
        accountConcurrency: config.BILLING_ACCOUNT_CONCURRENCY,
        observer: {
          outcomes: (outcome, count) => results.inc({ outcome }, count),
          alertPublished: (alertId, latencyMs) => {
            alerts.inc();
            if (latencyMs !== undefined) breachLatency.observe(latencyMs / 1000);
            logger.info({ alertId, breachToAlertMs: latencyMs }, 'spending alert published');
          },
          thresholdEventPublished: () => thresholdEvents.inc(),
        },
      });

      // Alerts stored by an earlier run whose publication was not confirmed (a crash in between).
      const leftOver = await applier.sweepOutboxes();
      if (leftOver > 0) logger.info({ published: leftOver }, 'published outbox entries left by an earlier run');
      let sweeping = false;
      const sweepTimer = setInterval(() => {
        if (sweeping) return;
        sweeping = true;
        applier
          .sweepOutboxes()
          .catch((error: unknown) => logger.warn({ err: error }, 'outbox sweep failed'))
          .finally(() => (sweeping = false));
      }, config.BILLING_OUTBOX_SWEEP_INTERVAL);

      const consumer = new SpendConsumer({
        js,
        jsm,
        applier,
        deadLetters: deadLetterPublisher,
        spendDurable: `${config.BILLING_CONSUMER_NAME}-spend`,
        lateDurable: `${config.BILLING_CONSUMER_NAME}-late-spend`,
        ackWaitMs: config.BILLING_ACK_WAIT,
        maxMessagesPerRound: config.BILLING_MAX_MESSAGES_PER_ROUND,
        maxAckPending: config.BILLING_MAX_ACK_PENDING,
        maxRoundsInFlight: config.BILLING_MAX_ROUNDS_IN_FLIGHT,
        observer: {
          round: (messages, _entries, durationMs) => {
            roundMessages.observe(messages);
            roundSeconds.observe(durationMs / 1000);
          },
          urgentRound: () => urgentRounds.inc(),
          failed: (error) => {
            failedRounds.inc();
            logger.error({ err: error }, 'applying a round failed; it will be redelivered');
          },
        },
      });
      await consumer.start();
      return {
        backend: storeAccountBackend({ store, applier, policy, logger }),
        backendName: `per-result/${store.backend}`,
        stop: async () => {
          clearInterval(sweepTimer);
          await consumer.stop();
          await store.close();
        },
      };
    }

    let ready = false;
    const ops = await startOpsHttpServer({ port: config.BILLING_HTTP_PORT, registry, isReady: () => ready && !nc.isClosed(), logger, tls });
    const grpcServer = await startGrpcServer({
      tls,
      host: config.BILLING_GRPC_HOST,
      port: config.BILLING_GRPC_PORT,
      logger,
      fileDescriptorSetBase64,
      services: [
        {
          name: 'tolls.accounts.v1.AccountService',
          definition: AccountServiceService,
          implementation: createAccountService({
            backend: engine.backend,
            policy,
            limits: { maxThresholdMinor: config.BILLING_MAX_THRESHOLD_MINOR },
            token: apiToken,
            logger,
          }),
        },
      ],
    });
    ready = true;
    logger.info({ grpcPort: grpcServer.port, httpPort: ops.port, engine: engine.backendName, timeZone: config.OPERATOR_TIME_ZONE }, 'billing-threshold ready');

    return {
      stop: async () => {
        ready = false;
        await grpcServer.shutdown(Math.max(1_000, config.SHUTDOWN_GRACE_MS - 5_000));
        await engine.stop();
        await nc.drain();
        await ops.close();
      },
    };
  },
});
