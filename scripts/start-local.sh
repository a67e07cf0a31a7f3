#!/usr/bin/env bash
# Starts tollstream locally with simulated traffic and shows the results:
#   nats-server (JetStream) -> ingestor -> station file sender fed with a generated sample.
# Data persists in $TOLLSTREAM_DATA_DIR (default .tollstream/) between runs. Ctrl-C stops everything.
# Options (environment): NATS_PORT (4222), INGEST_GRPC_PORT (50051), INGEST_HTTP_PORT (9464),
#   SAMPLE_RECORDS (20000), TOLLSTREAM_DATA_DIR (.tollstream), KEEP_RUNNING (1: stay up after the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=${TOLLSTREAM_DATA_DIR:-$root/.tollstream}
nats_port=${NATS_PORT:-4222}
grpc_port=${INGEST_GRPC_PORT:-50051}
http_port=${INGEST_HTTP_PORT:-9464}
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

say "What the platform holds now"
npx --no-install tsx apps/cli/src/main.ts status --nats-url "nats://127.0.0.1:$nats_port"

say "Ingestor counters (Prometheus, http://127.0.0.1:$http_port/metrics)"
curl -s "http://127.0.0.1:$http_port/metrics" | grep -E '^tollstream_ingest_records_total|^tollstream_dead_letters_total' || true

if [ "${KEEP_RUNNING:-1}" = 1 ] && [ -t 0 ]; then
  say "Running. Send more with: STATION_TOKEN_FILE=$data/secrets/station-token npm run tollstream -- send <file> --ingest-address 127.0.0.1:$grpc_port"
  echo "Logs: $data/logs/. Press Ctrl-C to stop."
  wait "${pids[0]}"
fi
