#!/usr/bin/env bash
# Regenerates libs/contracts/src/generated from proto/ with ts-proto.
# --check: regenerate into a temp dir and fail if the committed code differs (stale).
set -euo pipefail
cd "$(dirname "$0")/.."
out=libs/contracts/src/generated
npx buf lint
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  sed "s#out: $out#out: $tmp/gen#" buf.gen.yaml > "$tmp/buf.gen.yaml"
  npx buf generate --template "$tmp/buf.gen.yaml"
  if ! diff -r "$out" "$tmp/gen" >/dev/null; then
    echo "Generated contracts are stale: run 'npm run proto:gen' and commit the result." >&2
    diff -r "$out" "$tmp/gen" | head -20 >&2
    exit 1
  fi
  echo "Generated contracts are up to date."
else
  rm -rf "$out"
  npx buf generate
  echo "Generated $out"
fi
