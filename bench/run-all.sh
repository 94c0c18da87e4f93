#!/usr/bin/env bash
# Runs every benchmark in sequence (about 30-40 minutes on 2 cores) and keeps each output in
# bench/results/<name>.txt (raw JSON beside it). Not run by CI.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
npm run build >/dev/null 2>&1 || echo "warning: npm run build reported errors (dist/ may still be usable)"
for b in overhead completeness replay memory idle; do
  echo "== $b"
  node "bench/$b.mjs" "$@" 2>&1 | tee "bench/results/$b.txt"
done
