#!/usr/bin/env bash
# Installs what the benchmarks need besides Node and the repo's own node_modules (Debian 12, root).
# Not run by CI.
set -euo pipefail
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y wrk mitmproxy bpftrace curl openssl
cd "$(dirname "$0")/.." && npm run build
