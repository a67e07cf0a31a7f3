import { DeliverPolicy, jetstream, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { pageOfAccount, Slicer } from '@tollstream/messaging';
import type { ListMonthsOptions, MonthKey } from './account-spend-store';
import { checkWrite, type AccountStateChanges, type AccountStateRecord, type AccountStateStore, type MonthTotalRecord } from './account-state-store';
import { isRevisionConflict, updateWithCompareAndSet } from './kv-compare-and-set';
import { accountLine, monthLine, MONTH_PATTERN } from './page-lines';
import { SortedIds } from './sorted-ids';

export interface KvAccountStateStoreOptions {
  /** Prefix of the read model's buckets, one per spend shard: `<prefix>-<shard>` (default billing-pages). */
  bucket?: string;
  /** Spend shard of an account (where its records are): the windower's and billing's `shardForAccount`. */
  shardOf: (accountId: string) => number;
  /** Bucket of the per-result design (ADR 0008), checked for accounts, never created (default billing-accounts). */
  legacyBucket?: string;
  /**
   * Prefix of the buckets of the one-entry-per-record layout (ADR 0013 amendment 1, default
   * billing-state): a shard whose paged bucket is new copies its records from there once.
   */
  previousLayoutBucket?: string;
  /** Pages per shard of a new bucket (stored in the bucket: an existing bucket keeps its own; default 512). */
  pagesPerShard?: number;
  /** A page gets a complete entry again after at most this many entries of changes (default 40, at most 40: 24 of the 64 revisions kept per page stay for a late former owner). */
  compactAfterChanges?: number;
  /**
   * A page with changes since its last complete entry that is then not written for this many writes
   * of its shard (a month that is over) gets a complete entry, so that reads of it need one get (default 60).
   */
  settleIdlePagesAfterWrites?: number;
  /** Stream replicas: 1 locally, 3 on a cluster. */
  replicas?: number;
  /** Puts awaiting their acknowledgement at once when a write falls back to acknowledged puts, and pages compacted at once (default 64). */
  maxWritesInFlight?: number;
}

/** What a bucket's layout entry says. */
interface PageLayout {
  format: 'pages-1';
  pagesPerShard: number;
}

/** One record of a page: an account (`a`) or an account month (`m`), with the position that decides which copy is newest. */
interface PageRecord {
  key: string;
  position: number;
  line: string;
}

/**
 * What the writer knows of a page it wrote: the accounts with a record in it (their records are the
 * state machine's, `AccountStateChanges.source`), and entries of changes written since its last
 * complete entry (undefined: unknown).
 */
interface CachedPage {
  accountIds: SortedIds;
  changesSinceComplete: number | undefined;
  /** The writer's write count when the page was last written. */
  lastWrite: number;
}

interface WriterCache {
  /** The shard's flushed position after this process's last write. */
  writtenPosition: number;
  writes: number;
  pages: Map<string, CachedPage>;
  /** Page keys with entries in the bucket. */
  stored: Set<string>;
}

const encoder = new TextEncoder();
/** A page not written by this many writes of its shard is dropped from the writer's memory. */
const IDLE_PAGE_WRITES = 300;
/** First line of a complete entry: a read whose latest revision is one needs no other. */
const COMPLETE_MARK = '#complete\n';
/** Longest run of a write's encoding before it lets the writer's other work in. */
const SLICE_MS = 5;
const decoder = new TextDecoder();
/** Revisions of a page the bucket keeps: a complete one is always among them (see compactAfterChanges). */
const PAGE_HISTORY = 64;
const MAX_COMPACT_AFTER_CHANGES = 40;
const MAX_PAGES_PER_SHARD = 65_536;
/** The shard's flushed position, in the shard's bucket. */
const POSITION_KEY = 'position';
/** Written, acknowledged, after a write's pages: its stream sequence proves that every page before it was stored. */
const WRITE_CHECK_KEY = 'write-check';
const LAYOUT_KEY = 'layout';
/** Pages of account records (`accounts`) and of each month's totals (`YYYY-MM`): a month's pages stop changing once it is over. */
type PageScope = 'accounts' | MonthKey;
const pageKey = (scope: PageScope, page: number) => `page.${scope}.${page}`;
const scopeOfPageKey = (key: string): PageScope => key.slice('page.'.length, key.lastIndexOf('.'));
type ChangedRecord = AccountStateRecord | MonthTotalRecord;
const lineOf = (scope: PageScope, record: ChangedRecord): string => (scope === 'accounts' ? accountLine(record as AccountStateRecord) : monthLine(record as MonthTotalRecord));
/** The months that have pages, so that a history is listed without listing keys. */
const MONTHS_KEY = 'months';
/*
 * A page is lines `<kind>\t<position>\t<key>\t<record JSON>\n`: kind `a` (account) or `m` (month), key
 * the account id as a JSON string (`m`: followed by the month). JSON never holds a raw tab or newline,
 * so a page is folded by kind, position and key without parsing the records.
 */
const accountRecordKey = (accountId: string) => `a\t${JSON.stringify(accountId)}`;
const monthRecordKey = (accountId: string, month: MonthKey) => `m\t${JSON.stringify(accountId)}${month}`;

/**
 * Embedded adapter (local run and CI): one bucket per spend shard (`<prefix>-<shard>`), in it the
 * shard's accounts packed into pages (`page.<n>`, `pageOfAccount`), the flushed position
 * (`position`) and the layout (`layout`). ADR 0013 amendment 3.
 *
 * Why pages: one KV entry per changed account month made a flush one broker message per window
 * result (~15 µs of nats-server CPU each, the pipeline's largest cost). A flush now writes one entry
 * per page that changed, holding only that page's records changed since the last flush; every
 * `compactAfterChanges` such entries (and at the first write to a page after a start) the page gets
 * a complete entry instead: its history folded, record by record the highest position winning. The
 * bucket keeps 64 revisions per page, so a complete one is always among them, and a read folds the
 * page's revisions the same way. Folding by position also makes a late former owner's writes
 * harmless: a copy of a lower position never wins.
 *
 * A shard's owner is its bucket's only writer (leases), which makes a bulk write cheap and still
 * checked (ADR 0013, amendment 1): the pages are published without waiting for one acknowledgement
 * each, then one acknowledged `write-check` entry; its stream sequence is the bucket's last one
 * before the write plus the pages plus one exactly when the broker stored every page. Otherwise
 * the write is done again with acknowledged puts. Only then is the position raised, by
 * compare-and-set, never lowered. A write first reads the position and writes nothing when it is
 * not behind (a replay or a late former owner).
 */
export class KvAccountStateStore implements AccountStateStore {
  readonly backend = 'nats-kv' as const;
  private readonly buckets = new Map<number, Promise<{ kv: KV; layout: PageLayout }>>();
  private readonly js: JetStreamClient;
  private readonly kvm: Kvm;
  private readonly prefix: string;
  private readonly legacyBucket: string;
  private readonly previousLayoutBucket: string;
  private readonly maxWritesInFlight: number;
  private readonly compactAfterChanges: number;
  /** Per shard this process writes: the pages as it wrote them (see write). */
  private readonly writerCaches = new Map<number, WriterCache>();
  /** Per bucket: the months it has pages of, as this process last wrote them. */
  private readonly monthsByBucket = new Map<string, Set<MonthKey>>();
  /** Writes that had to fall back to acknowledged puts (for tests and logs). */
  fallbackWrites = 0;
  /** Complete page entries written (for tests and logs). */
  compactions = 0;
  /** Pages a writer had to read back from the bucket (for tests and logs). */
  pagesReadBack = 0;
  /** Reads of a page's kept revisions (its latest was not complete; for tests and logs). */
  historyReads = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: KvAccountStateStoreOptions,
  ) {
    this.js = jetstream(nc);
    this.kvm = new Kvm(this.js);
    this.prefix = options.bucket ?? 'billing-pages';
    this.legacyBucket = options.legacyBucket ?? 'billing-accounts';
    this.previousLayoutBucket = options.previousLayoutBucket ?? 'billing-state';
    this.maxWritesInFlight = Math.max(1, options.maxWritesInFlight ?? 64);
    this.compactAfterChanges = Math.min(MAX_COMPACT_AFTER_CHANGES, Math.max(1, options.compactAfterChanges ?? 40));
  }

  static async open(nc: NatsConnection, options: KvAccountStateStoreOptions): Promise<KvAccountStateStore> {
    for (const [name, value] of [['bucket prefix', options.bucket ?? 'billing-pages'], ['previous layout bucket prefix', options.previousLayoutBucket ?? 'billing-state']]) {
      if (!/^[A-Za-z0-9_-]+$/.test(value)) throw new Error(`${name} must be letters, digits, - or _, not ${JSON.stringify(value)}`);
    }
    const pages = options.pagesPerShard ?? 512;
    if (!Number.isSafeInteger(pages) || pages < 1 || pages > MAX_PAGES_PER_SHARD) throw new Error(`pages per shard must be 1 to ${MAX_PAGES_PER_SHARD}, not ${pages}`);
    return new KvAccountStateStore(nc, options);
  }

  /** Name of the bucket that holds a shard's records. */
  bucketName(shard: number): string {
    return `${this.prefix}-${shard}`;
  }

  private bucket(shard: number): Promise<{ kv: KV; layout: PageLayout }> {
    let bucket = this.buckets.get(shard);
    if (!bucket) {
      bucket = this.openBucket(shard);
      bucket.catch(() => this.buckets.delete(shard));
      this.buckets.set(shard, bucket);
    }
    return bucket;
  }

  private async openBucket(shard: number): Promise<{ kv: KV; layout: PageLayout }> {
    const name = this.bucketName(shard);
    // Checked before create, which would otherwise take an existing bucket of another layout as it is.
    const existing = await this.kvm
      .open(name)
      .then((bucket) => bucket.status())
      .catch((error: unknown) => {
        if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return undefined;
        throw error;
      });
    if (existing && existing.history !== PAGE_HISTORY) {
      throw new Error(
        `bucket ${name} is not a paged read model (it keeps ${existing.history} revisions per key, not ${PAGE_HISTORY}): it is most likely the one-entry-per-record read model of an earlier version. ` +
          `Set BILLING_STATE_KV_BUCKET to a prefix not in use (default billing-pages) and BILLING_STATE_KV_PREVIOUS_BUCKET to ${JSON.stringify(this.prefix)}: its records are copied once (docs/billing.md, "Migrating")`,
      );
    }
    const kv = await this.kvm.create(name, { history: PAGE_HISTORY, replicas: this.options.replicas ?? 1 });
    const stored = await kv.get(LAYOUT_KEY);
    if (stored?.operation === 'PUT') return { kv, layout: parseLayout(name, stored.string()) };
    const layout: PageLayout = { format: 'pages-1', pagesPerShard: this.options.pagesPerShard ?? 512 };
    await this.copyPreviousLayout(shard, kv, layout);
    try {
      await kv.create(LAYOUT_KEY, encoder.encode(JSON.stringify(layout)));
      return { kv, layout };
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
      // Another process laid the bucket out first: its layout holds.
      const winner = await kv.get(LAYOUT_KEY);
      return { kv, layout: parseLayout(name, winner?.string() ?? '') };
    }
  }

  /**
   * A new paged bucket whose shard has a bucket of the one-entry-per-record layout: its records
   * (the latest value of each key) are written as complete pages, and its position carried over, so
   * months the state machine no longer holds in memory are kept. Done again by a process that
   * starts before the layout entry is written: the same records at the same positions.
   */
  private async copyPreviousLayout(shard: number, kv: KV, layout: PageLayout): Promise<void> {
    const stream = `KV_${this.previousLayoutBucket}-${shard}`;
    const jsm = await this.js.jetstreamManager();
    try {
      const info = await jsm.streams.info(stream);
      if (info.state.messages === 0) return;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return;
      throw error;
    }
    const pages = new Map<string, PageRecord[]>();
    let position = 0;
    const consumer = await this.js.consumers.get(stream, { deliver_policy: DeliverPolicy.LastPerSubject });
    const messages = await consumer.consume();
    const subjectPrefix = `$KV.${this.previousLayoutBucket}-${shard}.`;
    for await (const message of messages) {
      const key = message.subject.slice(subjectPrefix.length);
      const operation = message.headers?.get('KV-Operation');
      if (message.data.length > 0 && operation !== 'DEL' && operation !== 'PURGE') {
        if (key === POSITION_KEY) position = Number(message.string());
        else if (key.startsWith('account.') || key.startsWith('month.')) {
          const value = JSON.parse(message.string()) as AccountStateRecord | MonthTotalRecord;
          const record = parsePageRecord('month' in value ? monthLine(value) : accountLine(value));
          const key = pageKey('month' in value ? value.month : 'accounts', pageOfAccount(value.accountId, layout.pagesPerShard));
          const held = pages.get(key);
          if (held) held.push(record);
          else pages.set(key, [record]);
        }
      }
      if (message.info.pending === 0) break;
    }
    await messages.close();
    await this.recordMonths(kv, this.bucketName(shard), [...pages.keys()].map((key) => key.split('.')[1]).filter((scope) => MONTH_PATTERN.test(scope)));
    await this.putAcknowledged(kv, [...pages].map(([key, records]) => [key, pageBody(records)]));
    if (position > 0) await this.raiseFlushedPosition(kv, shard, position);
  }

  async write(shard: number, position: number, changes: AccountStateChanges): Promise<void> {
    checkWrite(shard, position, changes);
    const { kv, layout } = await this.bucket(shard);
    const stored = await this.flushedPosition(shard);
    if (stored >= position) return;

    // The changed records by page; their lines are made page by page as the entries are encoded
    // (all lines of a large flush at once were most of the writer's memory).
    const changedPages = new Map<string, { page: number; scope: PageScope; records: ChangedRecord[] }>();
    const add = (scope: PageScope, record: ChangedRecord) => {
      const page = pageOfAccount(record.accountId, layout.pagesPerShard);
      const key = pageKey(scope, page);
      const changed = changedPages.get(key);
      if (changed) changed.records.push(record);
      else changedPages.set(key, { page, scope, records: [record] });
    };
    const months = new Set<MonthKey>();
    for (const account of changes.accounts) add('accounts', account);
    for (const month of changes.months) {
      if (!MONTH_PATTERN.test(month.month)) throw new Error(`month of ${month.accountId} must be YYYY-MM, not ${JSON.stringify(month.month)}`);
      months.add(month.month);
      add(month.month, month);
    }
    // The writer (billing) applies its input on the same thread: encode in slices, never for long at once.
    const slice = new Slicer(SLICE_MS);
    await this.recordMonths(kv, this.bucketName(shard), [...months]);

    // What this process knows of the pages it wrote; dropped when someone else wrote the shard since
    // (another owner meanwhile, or this process's first write): then each page is read back once.
    let cache = this.writerCaches.get(shard);
    if (!cache || cache.writtenPosition !== stored) {
      cache = { writtenPosition: stored, writes: 0, pages: new Map(), stored: await this.storedPages(shard) };
      this.writerCaches.set(shard, cache);
    }
    const writer = cache;
    /** Pages read back during this write: their records, for those the source does not have. */
    const readBack = new Map<string, Map<string, PageRecord>>();
    const readBackPage = async (key: string) => {
      let records = readBack.get(key);
      if (!records) {
        records = writer.stored.has(key) ? await this.readPage(kv, key) : new Map<string, PageRecord>();
        if (writer.stored.has(key)) this.pagesReadBack++;
        readBack.set(key, records);
      }
      return records;
    };
    await forEachLimited(
      [...changedPages.keys()].filter((key) => !writer.pages.has(key)),
      this.maxWritesInFlight,
      async (key) => {
        const accountIds = new SortedIds();
        for (const record of (await readBackPage(key)).values()) accountIds.add(recordOf<{ accountId: string }>(record).accountId);
        writer.pages.set(key, { accountIds, changesSinceComplete: undefined, lastWrite: writer.writes });
      },
    );
    // Pages staggered (page mod 8) so that they do not all become complete at the same flush.
    const due = (changes: number | undefined, page: number) => changes === undefined || changes >= Math.max(1, this.compactAfterChanges - (page % 8));
    const completing: Array<[key: string, scope: PageScope, records: ChangedRecord[]]> = [];
    const entries: Array<[key: string, value: Uint8Array]> = [];
    // Pages idle since changes of theirs: a complete entry now, so that their latest revision is one.
    const settleAfter = this.options.settleIdlePagesAfterWrites ?? 60;
    for (const [key, cached] of writer.pages) {
      if (!changedPages.has(key) && (cached.changesSinceComplete ?? 0) > 0 && writer.writes - cached.lastWrite >= settleAfter) completing.push([key, scopeOfPageKey(key), []]);
    }
    for (const [key, { page, scope, records }] of changedPages) {
      const pause = slice.pauseIfDue();
      if (pause) await pause;
      const cached = writer.pages.get(key) as CachedPage;
      for (const record of records) cached.accountIds.add(record.accountId);
      cached.accountIds.merge();
      if (due(cached.changesSinceComplete, page)) completing.push([key, scope, records]);
      else entries.push([key, encoder.encode(records.map((record) => lineOf(scope, record)).join(''))]);
    }
    // A complete entry from the changes' records and, for the page's other accounts, the source's
    // records as they are now, encoded straight into the page; a record neither has from what is
    // read back.
    for (const [key, scope, records] of completing) {
      const pause = slice.pauseIfDue();
      if (pause) await pause;
      const cached = writer.pages.get(key) as CachedPage;
      const { source } = changes;
      // The changes' records by account, the newest of each.
      const changed = new Map<string, ChangedRecord>();
      for (const record of records) {
        const held = changed.get(record.accountId);
        if (!held || record.position >= held.position) changed.set(record.accountId, record);
      }
      const lines: string[] = [];
      const lacking: string[] = [];
      for (const accountId of cached.accountIds) {
        // A changed record is the record as of this write's position: all a complete entry needs (the
        // source may be newer still; the next write carries that). Asking the source for it too made
        // the first writes after a start, complete entries of nothing but changes, cost twice.
        const change = changed.get(accountId);
        if (change) {
          lines.push(lineOf(scope, change));
          continue;
        }
        const record = source === undefined ? undefined : scope === 'accounts' ? source.account(accountId) : source.month(accountId, scope);
        if (record === undefined) lacking.push(accountId);
        else lines.push(lineOf(scope, record));
      }
      if (lacking.length > 0) {
        // Neither the changes nor the source have them: only the page's stored entries do.
        const wanted = new Set(lacking.map((accountId) => (scope === 'accounts' ? accountRecordKey(accountId) : monthRecordKey(accountId, scope))));
        const held = new Map<string, PageRecord>();
        for (const record of (await readBackPage(key)).values()) if (wanted.has(record.key)) mergeRecord(held, record);
        for (const recordKey of wanted) lines.push(held.get(recordKey)?.line ?? '');
      }
      entries.push([key, encoder.encode(COMPLETE_MARK + lines.join(''))]);
    }
    const completed = completing.map(([key]) => key);
    const maxPayload = this.nc.info?.max_payload ?? Number.POSITIVE_INFINITY;
    for (const [key, value] of entries) {
      if (value.byteLength > maxPayload - 1_024) {
        this.writerCaches.delete(shard);
        throw new Error(
          `shard ${shard}: ${key} of ${this.bucketName(shard)} is ${value.byteLength} bytes, over what the broker takes in a message (${maxPayload}): the shard has outgrown ${layout.pagesPerShard} pages (docs/billing.md, "Read model pages": BILLING_STATE_PAGES)`,
        );
      }
    }
    try {
      if (!(await this.publishChecked(shard, kv, entries))) {
        this.fallbackWrites++;
        await this.putAcknowledged(kv, entries);
      }
    } catch (error) {
      // The pages hold records the bucket may lack: read them back at the next write.
      this.writerCaches.delete(shard);
      throw error;
    }
    writer.writes++;
    for (const key of changedPages.keys()) {
      const cached = writer.pages.get(key) as CachedPage;
      cached.changesSinceComplete = (cached.changesSinceComplete ?? 0) + 1;
      cached.lastWrite = writer.writes;
      writer.stored.add(key);
    }
    for (const key of completed) (writer.pages.get(key) as CachedPage).changesSinceComplete = 0;
    this.compactions += completed.length;
    // Pages not written for a while (a month that is over) are dropped; read back if they change again.
    for (const [key, cached] of writer.pages) if (writer.writes - cached.lastWrite > IDLE_PAGE_WRITES) writer.pages.delete(key);
    await this.raiseFlushedPosition(kv, shard, position);
    writer.writtenPosition = position;
  }

  /** The page keys the shard's bucket holds entries of. */
  private async storedPages(shard: number): Promise<Set<string>> {
    const subjectPrefix = `$KV.${this.bucketName(shard)}.`;
    const jsm = await this.js.jetstreamManager();
    const info = await jsm.streams.info(`KV_${this.bucketName(shard)}`, { subjects_filter: `${subjectPrefix}page.>` });
    return new Set(Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(subjectPrefix.length)));
  }

  /** Publishes the entries unacknowledged, then proves by the check entry's sequence that all were stored. */
  private async publishChecked(shard: number, kv: KV, entries: Array<[string, Uint8Array]>): Promise<boolean> {
    const subjectPrefix = `$KV.${this.bucketName(shard)}.`;
    const before = (await kv.status()).streamInfo.state.last_seq;
    let bytes = 0;
    for (const [key, value] of entries) {
      this.nc.publish(subjectPrefix + key, value);
      // Bounded client buffer; the flush's round trip also lets the broker keep pace.
      if ((bytes += value.byteLength) > 4 * 1024 * 1024) {
        bytes = 0;
        await this.nc.flush();
      }
    }
    const check = await kv.put(WRITE_CHECK_KEY, encoder.encode(String(before)));
    return check === before + entries.length + 1;
  }

  private async putAcknowledged(kv: KV, entries: Array<[string, Uint8Array]>): Promise<void> {
    await forEachLimited(entries, this.maxWritesInFlight, async ([key, value]) => {
      await kv.put(key, value);
    });
  }

  private async raiseFlushedPosition(kv: KV, shard: number, position: number): Promise<void> {
    await updateWithCompareAndSet(kv, POSITION_KEY, `shard ${shard}: raising the flushed position to ${position}`, (entry) => {
      const stored = entry?.operation === 'PUT' ? Number(entry.string()) : 0;
      return { value: stored >= position ? undefined : encoder.encode(String(position)), result: undefined };
    });
  }

  async flushedPosition(shard: number): Promise<number> {
    if (!Number.isSafeInteger(shard) || shard < 0) throw new Error(`shard must be a non-negative integer, not ${shard}`);
    const entry = await (await this.bucket(shard)).kv.get(POSITION_KEY);
    return entry?.operation === 'PUT' ? Number(entry.string()) : 0;
  }

  async readAccount(accountId: string): Promise<AccountStateRecord | undefined> {
    const record = (await this.recordsOfPage(accountId, 'accounts')).get(accountRecordKey(accountId));
    return record ? recordOf<AccountStateRecord>(record) : undefined;
  }

  async readMonth(accountId: string, month: MonthKey): Promise<MonthTotalRecord | undefined> {
    if (!MONTH_PATTERN.test(month)) return undefined;
    const record = (await this.recordsOfPage(accountId, month)).get(monthRecordKey(accountId, month));
    return record ? recordOf<MonthTotalRecord>(record) : undefined;
  }

  async listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthTotalRecord[]> {
    const { kv } = await this.bucket(this.options.shardOf(accountId));
    const candidates = monthsOf(await kv.get(MONTHS_KEY))
      .filter((month) => options.beforeMonth === undefined || month < options.beforeMonth)
      .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const months: MonthTotalRecord[] = [];
    // Newest first, one month's page at a time, until the page of the list is full.
    for (const month of candidates) {
      if (months.length >= Math.max(0, options.limit)) break;
      const record = (await this.recordsOfPage(accountId, month)).get(monthRecordKey(accountId, month));
      if (record) months.push(recordOf<MonthTotalRecord>(record));
    }
    return months;
  }

  async legacyAccountsPresent(): Promise<boolean> {
    const jsm = await this.js.jetstreamManager();
    try {
      const info = await jsm.streams.info(`KV_${this.legacyBucket}`);
      return info.state.messages > 0;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return false;
      throw error;
    }
  }

  async close(): Promise<void> {
    // The bucket belongs to the connection, which the caller owns.
  }

  private async recordsOfPage(accountId: string, scope: PageScope): Promise<Map<string, PageRecord>> {
    const { kv, layout } = await this.bucket(this.options.shardOf(accountId));
    return this.readPage(kv, pageKey(scope, pageOfAccount(accountId, layout.pagesPerShard)));
  }

  /** Adds months to the bucket's list of months with pages (compare-and-set: concurrent writers add, never remove). */
  private async recordMonths(kv: KV, bucketName: string, months: MonthKey[]): Promise<void> {
    const known = this.monthsByBucket.get(bucketName) ?? new Set<MonthKey>();
    if (months.every((month) => known.has(month))) return;
    const recorded = await updateWithCompareAndSet(kv, MONTHS_KEY, `${bucketName}: recording months ${months.join(', ')}`, (entry) => {
      const all = new Set([...monthsOf(entry), ...known, ...months]);
      return { value: encoder.encode(JSON.stringify([...all].sort())), result: all };
    });
    this.monthsByBucket.set(bucketName, recorded);
  }

  /** A page as its kept revisions fold: for every record the copy of the highest position (the later revision on a tie). */
  private async readPage(kv: KV, key: string): Promise<Map<string, PageRecord>> {
    const records = new Map<string, PageRecord>();
    // The latest revision alone when it is complete (a page that settled); else the kept revisions.
    const latest = await kv.get(key);
    const latestText = latest?.operation === 'PUT' ? latest.string() : '';
    if (latestText.startsWith(COMPLETE_MARK)) {
      foldEntry(records, latestText, key);
      return records;
    }
    this.historyReads++;
    for await (const entry of await kv.history({ key })) {
      if (entry.operation === 'PUT') foldEntry(records, decoder.decode(entry.value), key);
    }
    return records;
  }
}

function monthsOf(entry: KvEntry | null): MonthKey[] {
  return entry?.operation === 'PUT' ? (JSON.parse(entry.string()) as MonthKey[]) : [];
}

function parseLayout(bucket: string, text: string): PageLayout {
  try {
    const layout = JSON.parse(text) as Partial<PageLayout>;
    if (layout.format === 'pages-1' && Number.isSafeInteger(layout.pagesPerShard) && (layout.pagesPerShard ?? 0) >= 1) return layout as PageLayout;
  } catch {
    // reported below
  }
  throw new Error(`bucket ${bucket} has a layout entry this version cannot read (${JSON.stringify(text.slice(0, 80))}): it was written by a newer version`);
}

/** A page line (with its newline) and the key and position it stands for, read without parsing the record. */
function parsePageRecord(line: string, where = 'a write'): PageRecord {
  const positionEnd = line.indexOf('\t', 2);
  const keyEnd = line.indexOf('\t', positionEnd + 1);
  const position = Number(line.slice(2, positionEnd));
  if ((line[0] !== 'a' && line[0] !== 'm') || line[1] !== '\t' || positionEnd < 0 || keyEnd < 0 || !Number.isSafeInteger(position)) {
    throw new Error(`a read-model page line of ${where} is not one this version writes: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return { key: line.slice(0, 2) + line.slice(positionEnd + 1, keyEnd), position, line };
}

function recordOf<T>(record: PageRecord): T {
  return JSON.parse(record.line.slice(record.line.indexOf('\t', record.line.indexOf('\t', 2) + 1) + 1)) as T;
}

function mergeRecord(records: Map<string, PageRecord>, record: PageRecord): void {
  const held = records.get(record.key);
  if (!held || record.position >= held.position) records.set(record.key, record);
}

function foldEntry(records: Map<string, PageRecord>, text: string, where: string): void {
  for (const line of text.split('\n')) {
    if (line.length > 0 && !line.startsWith('#')) mergeRecord(records, parsePageRecord(`${line}\n`, where));
  }
}

function pageBody(records: Iterable<PageRecord>): Uint8Array {
  let body = COMPLETE_MARK;
  for (const record of records) body += record.line;
  return encoder.encode(body);
}

/** Runs `task` for every item, at most `limit` at once; the first failure is thrown once all started ones ended. */
async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++];
      try {
        await task(item);
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
}
