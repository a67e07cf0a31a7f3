#!/usr/bin/env bash
# Starts the whole tollstream pipeline locally with simulated traffic and shows it live:
#   nats-server (JetStream) -> ingestor -> windower -> billing-threshold, traffic-anomaly, warehouse-loader
#   (embedded ClickHouse) -> notifier, each its own process with its own configuration, fed by the simulator
#   (realistic stations in several time zones, accounts with monthly thresholds, injected faults).
# In a terminal it shows the live view (tollstream watch) until Ctrl-C, which stops everything cleanly.
# Without a terminal, or with KEEP_RUNNING=0, it runs DEMO_SECONDS, prints what the platform holds, and stops.
# Data persists in $TOLLSTREAM_DATA_DIR (default .tollstream/) between runs; delete it to start from scratch.
#
# Options (environment):
#   Ports: NATS_PORT (4222), INGEST_GRPC_PORT (50051), INGEST_HTTP_PORT (9464), WINDOWER_HTTP_PORT (9465),
#     WAREHOUSE_HTTP_PORT (9466), BILLING_GRPC_PORT (50053), BILLING_HTTP_PORT (9467), TRAFFIC_GRPC_PORT (50054),
#     TRAFFIC_HTTP_PORT (9468), NOTIFIER_GRPC_PORT (50055), NOTIFIER_HTTP_PORT (9469), SIMULATOR_HTTP_PORT (9470).
#   Simulator: SIM_RATE (records/s, 400), SIM_STATIONS (12), SIM_ACCOUNTS (20000), SIM_SEED (demo),
#     SIM_BACKFILL (40m of history sent first, so a 30-minute slot has closed), SIM_FAULTS (see docs/simulator.md).
#   Real servers instead of the local ones: NATS_URL (no local nats-server), MONGODB_URI (billing, traffic and
#     notifier stores in MongoDB), CLICKHOUSE_URL (the warehouse-loader writes to that ClickHouse server).
#   TOLLSTREAM_DATA_DIR (.tollstream), KEEP_RUNNING (1), DEMO_SECONDS (60, without a terminal or KEEP_RUNNING=0).
#   NATS_FSYNC: when the local nats-server forces JetStream writes to disk, "interval" (its default) or "always"
#     (before every acknowledgement); default from deploy/local/nats.json (ADR 0014, docs/deployment.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=${TOLLSTREAM_DATA_DIR:-$root/.tollstream}
nats_port=${NATS_PORT:-4222}
grpc_port=${INGEST_GRPC_PORT:-50051}
http_port=${INGEST_HTTP_PORT:-9464}
windower_http_port=${WINDOWER_HTTP_PORT:-9465}
warehouse_http_port=${WAREHOUSE_HTTP_PORT:-9466}
billing_grpc_port=${BILLING_GRPC_PORT:-50053}
billing_http_port=${BILLING_HTTP_PORT:-9467}
traffic_grpc_port=${TRAFFIC_GRPC_PORT:-50054}
traffic_http_port=${TRAFFIC_HTTP_PORT:-9468}
notifier_grpc_port=${NOTIFIER_GRPC_PORT:-50055}
notifier_http_port=${NOTIFIER_HTTP_PORT:-9469}
simulator_http_port=${SIMULATOR_HTTP_PORT:-9470}
sim_rate=${SIM_RATE:-400}
sim_stations=${SIM_STATIONS:-12}
sim_accounts=${SIM_ACCOUNTS:-20000}
sim_seed=${SIM_SEED:-demo}
sim_backfill=${SIM_BACKFILL:-}
sim_faults=${SIM_FAULTS:-duplicates=0.01,out-of-order=2s,late=5m:0.002,malformed=0.001,silent=st-007,drop=st-003:0.2}
demo_seconds=${DEMO_SECONDS:-60}
interactive=0
if [ "${KEEP_RUNNING:-1}" = 1 ] && [ -t 0 ] && [ -t 1 ]; then interactive=1; fi
mkdir -p "$data/logs" "$data/secrets" "$data/nats" "$data/scenario"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
tollstream() { node --import tsx "$root/apps/cli/src/main.ts" "$@"; }

if [ -z "${NATS_URL:-}" ] && ! command -v nats-server >/dev/null 2>&1; then
  say "Installing nats-server (Debian package)..."
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nats-server
  else sudo apt-get update -qq && sudo apt-get install -y -qq nats-server; fi
fi
if [ ! -d node_modules ]; then say "Installing npm packages (npm ci)..."; npm ci --no-audit --no-fund; fi

pids=()
cleanup() {
  say "Stopping..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "Stopped. Data kept in $data (delete it to start from scratch). Logs: $data/logs/"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_log() { # file pattern seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "Timed out waiting for '$2' in $1:"; tail -20 "$1"; return 1
}
secret() { # file: a random credential created once, never printed
  if [ ! -f "$1" ]; then
    node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64url'))" >"$1"
    chmod 600 "$1"
  fi
}
memory_budget() { # key...: a value of deploy/local/memory.json (the local memory budget, ADR 0012)
  node -e 'let v = require("./deploy/local/memory.json"); for (const k of process.argv.slice(1)) v = v[k]; process.stdout.write(String(v ?? ""))' "$@"
}
start_service() { # app log-pattern-timeout env...
  local app=$1 timeout=$2; shift 2
  # shellcheck disable=SC2046 # the flags are words
  env "$@" node $(memory_budget nodeOptions "$app") --enable-source-maps "dist/apps/$app/main.cjs" >"$data/logs/$app.log" 2>&1 &
  pids+=($!)
  wait_for_log "$data/logs/$app.log" "\"msg\":\"$app ready\"" "$timeout"
}

# The services run as in their images: the built bundles (node + tsx from source holds about 60 MiB more
# per process). Nx rebuilds only what changed since the last run.
say "Building the services (a minute the first time, seconds after)..."
if ! npx nx run-many -t build -p ingestor windower billing-threshold traffic-anomaly warehouse-loader notifier simulator-app \
  --output-style=static >"$data/logs/build.log" 2>&1; then
  echo "The build failed:"; tail -30 "$data/logs/build.log"; exit 1
fi

if [ -n "${NATS_URL:-}" ]; then
  nats_url=$NATS_URL
  say "Using the NATS server at $nats_url"
else
  nats_url="nats://127.0.0.1:$nats_port"
  nats_fsync=${NATS_FSYNC:-$(node -e 'process.stdout.write(String(require("./deploy/local/nats.json").fsync))')}
  case "$nats_fsync" in interval|always) ;; *) echo "NATS_FSYNC: expected interval or always, got '$nats_fsync'"; exit 1 ;; esac
  # sync_interval exists from nats-server 2.10 on; 2.9 (Debian 12) refuses it, so there "always" is the store
  # directory's synchronous-updates attribute, on every file already in it too (chattr -R).
  read -r nats_major nats_minor < <(nats-server --version | sed -E 's/.*v([0-9]+)\.([0-9]+)\..*/\1 \2/')
  sync_option=0; if (( nats_major > 2 || (nats_major == 2 && nats_minor >= 10) )); then sync_option=1; fi
  {
    echo "# Written by scripts/start-local.sh on every start (NATS_FSYNC=$nats_fsync)."
    echo "jetstream {"
    echo "  store_dir: \"$data/nats\""
    if [ "$nats_fsync" = always ] && [ "$sync_option" = 1 ]; then echo "  sync_interval: always"; fi
    echo "}"
  } >"$data/nats-server.conf"
  if [ "$nats_fsync" = always ] && [ "$sync_option" = 0 ]; then
    if ! chattr -R +S "$data/nats" 2>"$data/logs/chattr.log"; then
      echo "NATS_FSYNC=always: nats-server $(nats-server --version) has no sync_interval and the store's file system refuses"
      echo "chattr +S ($(cat "$data/logs/chattr.log")). Use nats-server 2.10+, a store on ext4/xfs, or NATS_FSYNC=interval."
      exit 1
    fi
  elif [ "$sync_option" = 0 ]; then
    chattr -R -S "$data/nats" 2>/dev/null || true # a store that ran with "always" before
  fi
  say "Starting nats-server with JetStream on 127.0.0.1:$nats_port (store: $data/nats, fsync: $nats_fsync)"
  GOMEMLIMIT="${GOMEMLIMIT:-$(memory_budget natsServerGoMemoryLimit)}" \
    nats-server -c "$data/nats-server.conf" -a 127.0.0.1 -p "$nats_port" -m "$((nats_port + 4000))" >"$data/logs/nats.log" 2>&1 &
  pids+=($!)
  wait_for_log "$data/logs/nats.log" "Server is ready" 15
fi
store=nats-kv
if [ -n "${MONGODB_URI:-}" ]; then store=mongodb; say "Stores: MongoDB (MONGODB_URI)"; fi

secret "$data/secrets/station-token"
secret "$data/secrets/account-api-token"
secret "$data/secrets/traffic-api-token"
secret "$data/secrets/notification-api-token"

say "Simulated operator: $sim_stations stations, $sim_accounts accounts (seed $sim_seed); files in $data/scenario"
node dist/apps/simulator/main.cjs scenario --out "$data/scenario" --seed "$sim_seed" \
  --stations "$sim_stations" --accounts "$sim_accounts" --rate "$sim_rate" --token-file "$data/secrets/station-token"

say "Starting the ingestor (gRPC 127.0.0.1:$grpc_port)"
start_service ingestor 60 NATS_URL="$nats_url" INGEST_GRPC_HOST=127.0.0.1 INGEST_GRPC_PORT="$grpc_port" INGEST_HTTP_PORT="$http_port" \
  INGEST_STATION_CREDENTIALS_FILE="$data/scenario/ingest-stations.json"

if [ "$store" = nats-kv ]; then
  say "Loading the traffic reference (expected vehicles per station, weekday and 30-minute slot)"
  tollstream traffic load "$data/scenario/traffic-references.csv" --nats-url "$nats_url" | tail -3
fi

say "Starting billing-threshold (AccountService gRPC 127.0.0.1:$billing_grpc_port)"
start_service billing-threshold 60 NATS_URL="$nats_url" BILLING_GRPC_HOST=127.0.0.1 BILLING_GRPC_PORT="$billing_grpc_port" \
  BILLING_HTTP_PORT="$billing_http_port" ACCOUNT_API_TOKEN_FILE="$data/secrets/account-api-token" BILLING_STORE="$store" ${MONGODB_URI:+MONGODB_URI="$MONGODB_URI"}

# Default history: from the start of the previous 30-minute slot, so a whole slot closes at once and
# traffic alerts show (a partly covered first slot would look like a traffic drop). The stations'
# zones have whole-hour offsets, so their slots start at :00 and :30 UTC.
if [ -z "$sim_backfill" ]; then sim_backfill="$(( $(date +%s) % 1800 + 1800 ))s"; fi
say "Starting the simulator: $sim_backfill of history first, then live at about $sim_rate records/s (faults: $sim_faults)"
# shellcheck disable=SC2046 # the flags are words
node $(memory_budget nodeOptions simulator) --enable-source-maps dist/apps/simulator/main.cjs run --ingest-address "127.0.0.1:$grpc_port" --token-file "$data/secrets/station-token" \
  --account-service "127.0.0.1:$billing_grpc_port" --account-token-file "$data/secrets/account-api-token" \
  --seed "$sim_seed" --stations "$sim_stations" --accounts "$sim_accounts" --rate "$sim_rate" --backfill "$sim_backfill" \
  --faults "$sim_faults" --http-port "$simulator_http_port" >"$data/logs/simulator.log" 2>&1 &
pids+=($!)

say "Sending the history (the windower starts once it is in, so no record of it counts as late)"
for _ in $(seq 1 1800); do
  grep -q '"event":"live"' "$data/logs/simulator.log" 2>/dev/null && break
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "The simulator stopped:"; tail -5 "$data/logs/simulator.log"; exit 1; fi
  sleep 1
done
grep '"event":"live"' "$data/logs/simulator.log" | head -1 | node -e "
  const line = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  console.log('History in: ' + line.accepted + ' records accepted, ' + line.duplicate + ' duplicates, ' +
    Object.values(line.rejected).reduce((a, b) => a + b, 0) + ' rejected (dead-lettered with the reason); now live.');
"

say "Starting the windower (half-second spend windows, 30-minute traffic slots in each station's time zone)"
start_service windower 60 NATS_URL="$nats_url" WINDOWER_HTTP_PORT="$windower_http_port" WINDOWER_INSTANCE_ID=local-1 \
  STATION_TIME_ZONES_FILE="$data/scenario/station-time-zones.json" || {
  if grep -q 'window configuration differs' "$data/logs/windower.log"; then
    say "This data directory holds results computed with other window settings (an older version of npm start?)."
    echo "The windower refuses to publish them again under new ids (billing would count them twice). Start over with: rm -rf $data"
  fi
  exit 1
}

if [ -n "${CLICKHOUSE_URL:-}" ]; then warehouse="CLICKHOUSE_URL=$CLICKHOUSE_URL"; where="the ClickHouse server"
else warehouse="WAREHOUSE_DATA_DIR=$data/warehouse"; where="embedded ClickHouse in $data/warehouse"; fi
say "Starting the warehouse-loader ($where)"
start_service warehouse-loader 90 NATS_URL="$nats_url" "$warehouse" WAREHOUSE_HTTP_PORT="$warehouse_http_port"

say "Starting traffic-anomaly (TrafficReferenceService gRPC 127.0.0.1:$traffic_grpc_port)"
start_service traffic-anomaly 60 NATS_URL="$nats_url" TRAFFIC_GRPC_HOST=127.0.0.1 TRAFFIC_GRPC_PORT="$traffic_grpc_port" \
  TRAFFIC_HTTP_PORT="$traffic_http_port" TRAFFIC_API_TOKEN_FILE="$data/secrets/traffic-api-token" TRAFFIC_STORE="$store" \
  TRAFFIC_MAX_CATCH_UP=1h ${MONGODB_URI:+MONGODB_URI="$MONGODB_URI"}

say "Starting the notifier (NotificationService gRPC 127.0.0.1:$notifier_grpc_port)"
start_service notifier 60 NATS_URL="$nats_url" NOTIFIER_GRPC_HOST=127.0.0.1 NOTIFIER_GRPC_PORT="$notifier_grpc_port" \
  NOTIFIER_HTTP_PORT="$notifier_http_port" NOTIFICATION_API_TOKEN_FILE="$data/secrets/notification-api-token" NOTIFIER_STORE="$store" ${MONGODB_URI:+MONGODB_URI="$MONGODB_URI"}

ports="simulator=$simulator_http_port,ingestor=$http_port,windower=$windower_http_port,warehouse-loader=$warehouse_http_port"
ports="$ports,billing-threshold=$billing_http_port,traffic-anomaly=$traffic_http_port,notifier=$notifier_http_port"
if [ "$interactive" = 1 ]; then
  say "Live view starting (Ctrl-C stops everything). Logs: $data/logs/"
  sleep 2
  set +e
  tollstream watch --nats-url "$nats_url" --ports "$ports"
  exit 0
fi

say "Running for $demo_seconds s (set KEEP_RUNNING=1 in a terminal for the live view)"
sleep "$demo_seconds"
say "Live view (one reading; in a terminal: npm run -s tollstream -- watch)"
tollstream watch --once --nats-url "$nats_url" --ports "$ports" || true
say "Simulator"
grep '"event":' "$data/logs/simulator.log" | tail -1 | node -e "
  const line = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const rejected = Object.entries(line.rejectedByField || {}).map(([field, count]) => field + ' ' + count).join(', ');
  console.log('sent ' + line.submittedRecords + ' records: ' + line.accepted + ' accepted, ' + line.duplicate + ' duplicates (answered DUPLICATE, not counted twice), ' +
    'rejected by field: ' + (rejected || 'none') + '; event time ' + line.eventTimeStart + ' to ' + line.eventTime);
"
say "In the warehouse (SQL: npm run -s tollstream -- sql \"...\")"
sql_source=(--data-dir "$data/warehouse"); [ -n "${CLICKHOUSE_URL:-}" ] && sql_source=(--clickhouse-url "$CLICKHOUSE_URL")
tollstream sql "${sql_source[@]}" \
  "SELECT station_id, slot_start, vehicles FROM tolls.traffic_per_station_slot ORDER BY slot_start DESC, station_id LIMIT 12" || true
tollstream sql "${sql_source[@]}" "SELECT * FROM tolls.freshness" || true
