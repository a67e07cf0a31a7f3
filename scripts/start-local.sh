#!/usr/bin/env bash
# Starts tollstream locally with simulated traffic and shows the results:
#   nats-server (JetStream) -> ingestor -> windower -> billing-threshold, warehouse-loader (embedded
#   ClickHouse), and a station file sender fed with a generated sample.
# Data persists in $TOLLSTREAM_DATA_DIR (default .tollstream/) between runs. Ctrl-C stops everything.
# Options (environment): NATS_PORT (4222), INGEST_GRPC_PORT (50051), INGEST_HTTP_PORT (9464), WINDOWER_HTTP_PORT (9465),
#   WAREHOUSE_HTTP_PORT (9466), BILLING_GRPC_PORT (50053), BILLING_HTTP_PORT (9467), NOTIFIER_GRPC_PORT (50055),
#   NOTIFIER_HTTP_PORT (9469), TRAFFIC_GRPC_PORT (50054), TRAFFIC_HTTP_PORT (9468),
#   SAMPLE_RECORDS (20000), TOLLSTREAM_DATA_DIR (.tollstream), KEEP_RUNNING (1: stay up after the demo).
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
notifier_grpc_port=${NOTIFIER_GRPC_PORT:-50055}
notifier_http_port=${NOTIFIER_HTTP_PORT:-9469}
traffic_grpc_port=${TRAFFIC_GRPC_PORT:-50054}
traffic_http_port=${TRAFFIC_HTTP_PORT:-9468}
records=${SAMPLE_RECORDS:-20000}
mkdir -p "$data/logs" "$data/secrets" "$data/nats"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

if ! command -v nats-server >/dev/null 2>&1; then
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
  echo "Stopped. Data kept in $data (delete it to start from scratch)."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_log() { # file pattern seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "Timed out waiting for '$2' in $1:"; tail -20 "$1"; return 1
}

say "Starting nats-server with JetStream on 127.0.0.1:$nats_port (store: $data/nats)"
nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$data/nats" -m "$((nats_port + 4000))" >"$data/logs/nats.log" 2>&1 &
pids+=($!)
wait_for_log "$data/logs/nats.log" "Server is ready" 15

# One station credential for the demo, created once; the token never appears in logs.
if [ ! -f "$data/secrets/station-token" ]; then
  node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64url'))" >"$data/secrets/station-token"
  chmod 600 "$data/secrets/station-token"
fi
node -e "
  const token = require('fs').readFileSync(process.argv[1], 'utf8');
  const stations = Array.from({ length: 12 }, (_, i) => 'st-' + String(i + 1).padStart(3, '0'));
  require('fs').writeFileSync(process.argv[2], JSON.stringify({ stations: [{ name: 'demo-plazas', token, stationIds: stations }] }, null, 2));
" "$data/secrets/station-token" "$data/secrets/stations.json"

say "Starting the ingestor (gRPC 127.0.0.1:$grpc_port, metrics http://127.0.0.1:$http_port/metrics)"
NATS_URL="nats://127.0.0.1:$nats_port" INGEST_GRPC_HOST=127.0.0.1 INGEST_GRPC_PORT="$grpc_port" INGEST_HTTP_PORT="$http_port" \
  INGEST_STATION_CREDENTIALS_FILE="$data/secrets/stations.json" \
  node --import tsx apps/ingestor/src/main.ts >"$data/logs/ingestor.log" 2>&1 &
pids+=($!)
wait_for_log "$data/logs/ingestor.log" '"msg":"ingestor ready"' 60

say "Starting the windower (event-time windows; metrics http://127.0.0.1:$windower_http_port/metrics)"
# The sample below is the last hour of traffic sent at once (a backfill, not live traffic): a spend
# lateness of 2 h lets it into the 1-second spend windows instead of the late subject.
NATS_URL="nats://127.0.0.1:$nats_port" WINDOWER_HTTP_PORT="$windower_http_port" WINDOWER_INSTANCE_ID=local-1 SPEND_ALLOWED_LATENESS=2h \
  node --max-semi-space-size=32 --import tsx apps/windower/src/main.ts >"$data/logs/windower.log" 2>&1 &
pids+=($!)
wait_for_log "$data/logs/windower.log" '"msg":"windower ready"' 60

say "Starting the warehouse-loader (embedded ClickHouse in $data/warehouse; metrics http://127.0.0.1:$warehouse_http_port/metrics)"
NATS_URL="nats://127.0.0.1:$nats_port" WAREHOUSE_DATA_DIR="$data/warehouse" WAREHOUSE_HTTP_PORT="$warehouse_http_port" \
  node --import tsx apps/warehouse-loader/src/main.ts >"$data/logs/warehouse-loader.log" 2>&1 &
pids+=($!)
wait_for_log "$data/logs/warehouse-loader.log" '"msg":"warehouse-loader ready"' 90

# The mobile backend's credential for the AccountService, created once.
if [ ! -f "$data/secrets/account-api-token" ]; then
  node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64url'))" >"$data/secrets/account-api-token"
  chmod 600 "$data/secrets/account-api-token"
fi
say "Starting billing-threshold (AccountService gRPC 127.0.0.1:$billing_grpc_port; metrics http://127.0.0.1:$billing_http_port/metrics)"
NATS_URL="nats://127.0.0.1:$nats_port" BILLING_GRPC_HOST=127.0.0.1 BILLING_GRPC_PORT="$billing_grpc_port" BILLING_HTTP_PORT="$billing_http_port" \
  ACCOUNT_API_TOKEN_FILE="$data/secrets/account-api-token" \
  node --import tsx apps/billing-threshold/src/main.ts >"$data/logs/billing-threshold.log" 2>&1 &
pids+=($!)
wait_for_log "$data/logs/billing-threshold.log" '"msg":"billing-threshold ready"' 60

if [ ! -f "$data/secrets/traffic-api-token" ]; then
  node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64url'))" >"$data/secrets/traffic-api-token"
  chmod 600 "$data/secrets/traffic-api-token"
fi
say "Starting traffic-anomaly (TrafficReferenceService gRPC 127.0.0.1:$traffic_grpc_port; metrics http://127.0.0.1:$traffic_http_port/metrics)"
NATS_URL="nats://127.0.0.1:$nats_port" TRAFFIC_GRPC_HOST=127.0.0.1 TRAFFIC_GRPC_PORT="$traffic_grpc_port" TRAFFIC_HTTP_PORT="$traffic_http_port" \
  TRAFFIC_API_TOKEN_FILE="$data/secrets/traffic-api-token" \
  node --import tsx apps/traffic-anomaly/src/main.ts >"$data/logs/traffic-anomaly.log" 2>&1 &
pids+=($!)
wait_for_log "$data/logs/traffic-anomaly.log" '"msg":"traffic-anomaly ready"' 60

if [ ! -f "$data/secrets/notification-api-token" ]; then
  node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64url'))" >"$data/secrets/notification-api-token"
  chmod 600 "$data/secrets/notification-api-token"
fi
say "Starting the notifier (NotificationService gRPC 127.0.0.1:$notifier_grpc_port; metrics http://127.0.0.1:$notifier_http_port/metrics)"
NATS_URL="nats://127.0.0.1:$nats_port" NOTIFIER_GRPC_HOST=127.0.0.1 NOTIFIER_GRPC_PORT="$notifier_grpc_port" NOTIFIER_HTTP_PORT="$notifier_http_port" \
  NOTIFICATION_API_TOKEN_FILE="$data/secrets/notification-api-token" \
  node --import tsx apps/notifier/src/main.ts >"$data/logs/notifier.log" 2>&1 &
pids+=($!)
wait_for_log "$data/logs/notifier.log" '"msg":"notifier ready"' 60

say "Generating $records simulated toll transactions (with faults: invalid and duplicate records)"
sample="$data/sample-$(date +%Y%m%d-%H%M%S).ndjson"
npx --no-install tsx apps/cli/src/main.ts sample "$sample" --count "$records" \
  --stations st-001,st-002,st-003,st-004,st-005,st-006,st-007,st-008,st-009,st-010,st-011,st-012 --with-faults \
  --seed "$(date +%s)"  # new transactions every run; resending an old file shows DUPLICATE

say "Sending them as a station would (batched, retried, checkpointed)"
set +e
STATION_TOKEN_FILE="$data/secrets/station-token" npx --no-install tsx apps/cli/src/main.ts send "$sample" \
  --ingest-address "127.0.0.1:$grpc_port"
send_status=$?
set -e
[ $send_status -le 2 ] || exit $send_status

sleep 4 # let the 1-second spend windows close (watermark = newest event time - 1 s, or the idle timeout)
say "What the platform holds now"
npx --no-install tsx apps/cli/src/main.ts status --nats-url "nats://127.0.0.1:$nats_port"

say "Ingestor counters (Prometheus, http://127.0.0.1:$http_port/metrics)"
curl -s "http://127.0.0.1:$http_port/metrics" | grep -E '^tollstream_ingest_records_total|^tollstream_dead_letters_total' || true
say "In the warehouse (SQL: npm run -s tollstream -- sql \"...\")"
npx --no-install tsx apps/cli/src/main.ts sql --data-dir "$data/warehouse" \
  "SELECT station_id, slot_start, vehicles FROM tolls.traffic_per_station_slot ORDER BY slot_start DESC, station_id LIMIT 8" || true
npx --no-install tsx apps/cli/src/main.ts sql --data-dir "$data/warehouse" "SELECT * FROM tolls.freshness" || true

say "Windower counters (http://127.0.0.1:$windower_http_port/metrics)"
curl -s "http://127.0.0.1:$windower_http_port/metrics" \
  | grep -E '^tollstream_windower_(records_total|results_total|late_records_total|open_windows|owned_partitions)' || true
say "Billing counters (http://127.0.0.1:$billing_http_port/metrics)"
curl -s "http://127.0.0.1:$billing_http_port/metrics" | grep -E '^tollstream_billing_' | head -12 || true

if [ "${KEEP_RUNNING:-1}" = 1 ] && [ -t 0 ]; then
  say "Running. Send more with: STATION_TOKEN_FILE=$data/secrets/station-token npm run tollstream -- send <file> --ingest-address 127.0.0.1:$grpc_port"
  echo "Logs: $data/logs/. Press Ctrl-C to stop."
  wait "${pids[0]}"
fi
