#!/usr/bin/env bash
# Checks proto/ against the proto/ of a git revision (default: main) with buf's breaking-change rules
# (buf.yaml: FILE). Usage: npm run proto:breaking [-- <git-ref>]
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-main}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# git archive rather than buf's .git input: it also works in a git worktree, where .git is a file.
git archive "$ref" proto buf.yaml | tar -x -C "$tmp"
npx buf breaking --against "$tmp"
echo "proto/ has no breaking change against $ref."
