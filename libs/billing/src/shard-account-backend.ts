import { randomUUID } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { createInbox, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import {
  RECORD_KIND_HEADER,
  SpendingThresholdCommand,
  SpendingThresholdCommandOutcome,
  SpendShardRecordKinds,
  Subjects,
  type SpendingThreshold,
} from '@tollstream/contracts';
import { shardForAccount } from '@tollstream/messaging';
import type { AccountStateStore, MonthKey, ThresholdRecord } from '@tollstream/stores';
import { AccountBackendUnavailableError, type AccountBackend, type AccountView, type MonthView, type SetThresholdOutcome } from './account-service';
import type { ThresholdInput } from './account-spend';
import type { AccountState } from './billing-shard';
import type { ShardQuery, ShardQueryAnswer } from './shard-runner';

export interface ShardAccountBackendOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  /** The read model, for when the shard's owner does not answer. */
  store: AccountStateStore;
  spendShards: number;
  /** How long a threshold change waits for the shard's owner to apply it. */
  commandTimeoutMs: number;
  /** How long a read waits for the shard's owner before reading the store. */
  queryTimeoutMs: number;
}

/**
 * The AccountService's backend for the shard state machine (ADR 0013):
 * - a threshold change is a SpendingThresholdCommand appended to the account's spend shard, so that
 *   billing applies it in one order with the account's spend; the call waits for the owner's outcome;
 * - reads ask the shard's owner (exact: everything applied so far) and fall back to the read model
 *   in the store, at most one flush interval behind, when no owner answers in time.
 */
export function shardAccountBackend(options: ShardAccountBackendOptions): AccountBackend {
  const { nc, js, store, spendShards } = options;

  const command = async (accountId: string, threshold: ThresholdInput | undefined): Promise<SpendingThresholdCommandOutcome> => {
    const commandId = randomUUID();
    const shard = shardForAccount(accountId, spendShards);
    const replySubject = createInbox();
    let timer: NodeJS.Timeout | undefined;
    // Subscribed before the command is published on the same connection: the answer cannot be missed.
    const answer = new Promise<Msg>((resolve, reject) => {
      const subscription = nc.subscribe(replySubject, { max: 1, callback: (error, msg) => (error ? reject(error) : resolve(msg)) });
      timer = setTimeout(() => {
        subscription.unsubscribe();
        reject(
          new AccountBackendUnavailableError(
            `the threshold change is recorded (command ${commandId}) but billing's owner of spend shard ${shard} did not apply it within ${options.commandTimeoutMs} ms; it is applied when billing catches up (a retry with the same amount changes nothing)`,
          ),
        );
      }, options.commandTimeoutMs);
    });
    const recordHeaders = headers();
    recordHeaders.set(RECORD_KIND_HEADER, SpendShardRecordKinds.thresholdCommand);
    try {
      await js.publish(Subjects.customerSpendShard(shard), SpendingThresholdCommand.encode({ commandId, accountId, threshold, replySubject }).finish(), {
        msgID: `threshold-command/${commandId}`,
        headers: recordHeaders,
      });
      return SpendingThresholdCommandOutcome.decode((await answer).data);
    } catch (error) {
      answer.catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };

  /** The owner's view of the account; undefined when no owner answered in time. */
  const askOwner = async (accountId: string): Promise<ShardQueryAnswer | undefined> => {
    const query: ShardQuery = { accountId };
    try {
      const reply = await nc.request(Subjects.billingShardQueries(shardForAccount(accountId, spendShards)), JSON.stringify(query), { timeout: options.queryTimeoutMs });
      return JSON.parse(reply.string()) as ShardQueryAnswer;
    } catch {
      return undefined; // no responders (shard being taken over) or too slow: the read model answers
    }
  };

  const monthViewOf = (account: AccountState, month: MonthKey): MonthView | undefined => account.months.find((candidate) => candidate.month === month);

  return {
    setThreshold: async (accountId, input): Promise<SetThresholdOutcome> => {
      const outcome = await command(accountId, input);
      if (!outcome.accepted) return { ok: false, field: outcome.rejectionField, reason: outcome.rejectionReason };
      if (!outcome.threshold) throw new Error(`billing accepted the threshold of ${accountId} but returned none`);
      return { ok: true, threshold: thresholdRecordOf(outcome.threshold), breachedNow: outcome.breachedNow };
    },
    clearThreshold: async (accountId) => {
      const outcome = await command(accountId, undefined);
      if (!outcome.accepted) throw new Error(`billing refused to clear the threshold of ${accountId}: ${outcome.rejectionField} ${outcome.rejectionReason}`);
      return { cleared: outcome.changed };
    },
    readAccount: async (accountId): Promise<AccountView | undefined> => {
      const answer = await askOwner(accountId);
      if (answer) return answer.account;
      return store.readAccount(accountId);
    },
    readMonth: async (accountId, month) => {
      const answer = await askOwner(accountId);
      const held = answer?.account ? monthViewOf(answer.account, month) : undefined;
      if (held) return held;
      if (answer && !answer.account) return undefined;
      // Months the owner no longer holds in memory (long over) are in the read model.
      return store.readMonth(accountId, month);
    },
    listMonths: async (accountId, listOptions) => {
      const [answer, stored] = await Promise.all([askOwner(accountId), store.listMonths(accountId, { beforeMonth: listOptions.beforeMonth, limit: listOptions.limit + 4 })]);
      const months = new Map<MonthKey, MonthView>(stored.map((record) => [record.month, record]));
      for (const record of answer?.account?.months ?? []) {
        if (listOptions.beforeMonth === undefined || record.month < listOptions.beforeMonth) months.set(record.month, record);
      }
      return [...months.values()].sort((a, b) => (a.month < b.month ? 1 : a.month > b.month ? -1 : 0)).slice(0, listOptions.limit);
    },
  };
}

function thresholdRecordOf(threshold: SpendingThreshold): ThresholdRecord {
  return {
    amountMinor: threshold.amount?.amountMinor ?? 0,
    currency: threshold.amount?.currency ?? '',
    version: threshold.version,
    setAtMs: threshold.setAt?.getTime() ?? 0,
    effectiveFromMonth: threshold.effectiveFromMonth,
  };
}
