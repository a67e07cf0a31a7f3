/**
 * The warehouse schema as an ordered list of versioned migrations. Every statement is idempotent
 * (IF NOT EXISTS / CREATE OR REPLACE VIEW / ADD COLUMN IF NOT EXISTS), so applying a migration twice,
 * or from two loaders at once, is harmless. The same SQL runs on chDB and on a ClickHouse server.
 *
 * Schema evolution: never edit a released migration; append a new one. A new protobuf field becomes
 * `ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS new_field Type DEFAULT ...` in a new migration, plus the
 * column in the row mapping (rows.ts). Views are re-created with CREATE OR REPLACE VIEW.
 *
 * `{db}` in a statement is replaced by the (validated, quoted) database name.
 */
export interface Migration {
  /** Strictly increasing, starting at 1. */
  version: number;
  /** Short description, stored with the applied version. */
  name: string;
  statements: readonly string[];
}

/**
 * Tokens of recent inserts remembered per table (non-replicated MergeTree): a redelivered batch
 * re-inserted with the same insert_deduplication_token within this many inserts is dropped by the engine.
 */
export const DEDUPLICATION_WINDOW = 10_000;

const replacingSettings = `SETTINGS non_replicated_deduplication_window = ${DEDUPLICATION_WINDOW}`;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'transactions, window results, alerts',
    statements: [
      `CREATE TABLE IF NOT EXISTS {db}.transactions (
        station_id LowCardinality(String),
        transaction_id String,
        lane_id LowCardinality(String),
        tag_id String,
        plate String,
        account_id String,
        vehicle_class LowCardinality(String),
        amount_minor Int64,
        currency LowCardinality(String),
        occurred_at DateTime64(3, 'UTC'),
        ingested_at DateTime64(3, 'UTC'),
        partition UInt16,
        stream_sequence UInt64,
        batch_id String,
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3),
        INDEX idx_stream_sequence stream_sequence TYPE minmax GRANULARITY 1,
        INDEX idx_occurred_at occurred_at TYPE minmax GRANULARITY 1
      ) ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(occurred_at)
      ORDER BY (station_id, transaction_id)
      ${replacingSettings}`,
      `CREATE TABLE IF NOT EXISTS {db}.spend_windows (
        account_id String,
        currency LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        source_partition UInt16,
        revision UInt32,
        result_id String,
        amount_minor Int64,
        transaction_count UInt32,
        last_occurred_at DateTime64(3, 'UTC'),
        batch_id String,
        input_sequence UInt64,
        stream_sequence UInt64,
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree(revision)
      PARTITION BY toYYYYMM(window_start)
      ORDER BY (account_id, currency, window_start, window_end, source_partition)
      ${replacingSettings}`,
      `CREATE TABLE IF NOT EXISTS {db}.traffic_windows (
        station_id LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        revision UInt32,
        result_id String,
        time_zone LowCardinality(String),
        vehicle_count UInt32,
        counts_by_class Map(LowCardinality(String), UInt32),
        source_partition UInt16,
        batch_id String,
        input_sequence UInt64,
        stream_sequence UInt64,
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree(revision)
      PARTITION BY toYYYYMM(window_start)
      ORDER BY (station_id, window_start, window_end)
      ${replacingSettings}`,
      `CREATE TABLE IF NOT EXISTS {db}.alerts (
        alert_id String,
        kind LowCardinality(String),
        raised_at DateTime64(3, 'UTC'),
        account_id String,
        month String,
        time_zone LowCardinality(String),
        threshold_minor Int64,
        total_minor Int64,
        currency LowCardinality(String),
        breached_at DateTime64(3, 'UTC'),
        station_id LowCardinality(String),
        slot_start DateTime64(3, 'UTC'),
        slot_end DateTime64(3, 'UTC'),
        traffic_condition LowCardinality(String),
        vehicle_count UInt32,
        expected_minimum UInt32,
        expected_maximum UInt32,
        reference_version String,
        subject String,
        stream_sequence UInt64,
        loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree
      ORDER BY alert_id
      ${replacingSettings}`,
    ],
  },
  {
    version: 2,
    name: 'deduplicated BI views',
    statements: [
      // One row per transaction, whatever was replayed: the view BI tools should use.
      `CREATE OR REPLACE VIEW {db}.transactions_unique AS
        SELECT * FROM {db}.transactions FINAL`,
      `CREATE OR REPLACE VIEW {db}.traffic_per_station_slot AS
        SELECT station_id,
               toStartOfInterval(occurred_at, INTERVAL 30 MINUTE) AS slot_start,
               slot_start + INTERVAL 30 MINUTE AS slot_end,
               count() AS vehicles,
               countIf(vehicle_class = 'CAR') AS cars,
               countIf(vehicle_class = 'MOTORCYCLE') AS motorcycles,
               countIf(vehicle_class = 'BUS') AS buses,
               countIf(vehicle_class IN ('TRUCK_2_AXLE', 'TRUCK_3_PLUS_AXLE')) AS trucks
        FROM {db}.transactions FINAL
        GROUP BY station_id, slot_start`,
      `CREATE OR REPLACE VIEW {db}.revenue_per_station_hour AS
        SELECT station_id,
               toStartOfHour(occurred_at) AS hour_start,
               vehicle_class,
               currency,
               count() AS transactions,
               sum(amount_minor) AS revenue_minor
        FROM {db}.transactions FINAL
        GROUP BY station_id, hour_start, vehicle_class, currency`,
      `CREATE OR REPLACE VIEW {db}.monthly_spend_per_account AS
        SELECT account_id,
               toStartOfMonth(occurred_at) AS month,
               currency,
               count() AS transactions,
               sum(amount_minor) AS spend_minor
        FROM {db}.transactions FINAL
        WHERE account_id != ''
        GROUP BY account_id, month, currency`,
      // Latest revision of every window result (an amendment replaces the earlier values).
      `CREATE OR REPLACE VIEW {db}.spend_windows_latest AS
        SELECT * FROM {db}.spend_windows FINAL`,
      // Spend windows are computed per source partition: the customer's window total is their sum.
      `CREATE OR REPLACE VIEW {db}.account_spend_per_window AS
        SELECT account_id, currency, window_start, window_end,
               sum(amount_minor) AS amount_minor,
               sum(transaction_count) AS transactions,
               max(revision) AS max_revision
        FROM {db}.spend_windows FINAL
        GROUP BY account_id, currency, window_start, window_end`,
      `CREATE OR REPLACE VIEW {db}.traffic_windows_latest AS
        SELECT * FROM {db}.traffic_windows FINAL`,
      `CREATE OR REPLACE VIEW {db}.spending_alerts AS
        SELECT alert_id, raised_at, account_id, month, time_zone, threshold_minor, total_minor, currency, breached_at
        FROM {db}.alerts FINAL
        WHERE kind = 'spending'`,
      `CREATE OR REPLACE VIEW {db}.traffic_alerts AS
        SELECT alert_id, raised_at, station_id, slot_start, slot_end, time_zone, traffic_condition,
               vehicle_count, expected_minimum, expected_maximum, reference_version
        FROM {db}.alerts FINAL
        WHERE kind = 'traffic'`,
      // How old is the newest transaction in the warehouse (age_seconds), and when was it loaded.
      `CREATE OR REPLACE VIEW {db}.freshness AS
        SELECT max(ingested_at) AS newest_ingested_at,
               max(loaded_at) AS newest_loaded_at,
               if(count() = 0, NULL, dateDiff('millisecond', max(ingested_at), now64(3)) / 1000) AS age_seconds,
               count() AS stored_rows
        FROM {db}.transactions`,
    ],
  },
];

const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Validates a database name (letters, digits, underscore); throws otherwise. */
export function assertDatabaseName(database: string): string {
  if (!DATABASE_NAME.test(database)) {
    throw new Error(`invalid warehouse database name "${database}": letters, digits and _ only, not starting with a digit`);
  }
  return database;
}

/** The statements of a migration for one database. */
export function statementsFor(migration: Migration, database: string): string[] {
  const db = `\`${assertDatabaseName(database)}\``;
  return migration.statements.map((statement) => statement.split('{db}').join(db));
}

/** Throws unless versions are 1, 2, 3, ... in order (checked by a unit test and at start-up). */
export function assertMigrationsOrdered(list: readonly Migration[] = migrations): void {
  list.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`migration #${index} has version ${migration.version}, expected ${index + 1}`);
    }
  });
}
