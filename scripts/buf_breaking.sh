#!/usr/bin/env bash
# Fails when the protos break wire compatibility with an earlier commit (make buf-breaking; ADR 15).
# BREAKING_AGAINST names that commit; by default the main this branch started from, or, on main itself, the
# main before the last commit. Rules: buf.yaml's `breaking` section (WIRE).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-.venv/bin/buf}
against=${BREAKING_AGAINST:-}
if [ -z "$against" ]; then
  against=$(git merge-base HEAD main)
  if [ "$against" = "$(git rev-parse HEAD)" ]; then
    against=$(git rev-parse HEAD^)
  fi
fi
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
git archive "$against" protos buf.yaml | tar -x -C "$tree"
echo "buf breaking against $(git rev-parse --short "$against")"
"$BUF" breaking --against "$tree"
