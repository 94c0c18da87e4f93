#!/usr/bin/env bash
# Sets up a fresh clone for the benchmarks (Debian 12, as root; not run by CI): the tools they drive
# (wrk, mitmproxy, bpftrace, curl, openssl) and libbpf, then the repo's node_modules, then dist/,
# which the benchmarks import. Node >= 20.18 must already be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
node_ok='const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 18) ? 0 : 1)'
if ! node -e "$node_ok" 2>/dev/null; then
  echo "bench/setup.sh: Node >= 20.18 is needed first (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y wrk mitmproxy bpftrace curl openssl libbpf1
npm ci --no-audit --no-fund
npm run build
