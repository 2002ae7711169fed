#!/usr/bin/env bash
# Patroni failover benchmark: reference etcd 3.6 against etcd-ts (see bench/patroni.ts for what is
# measured and the PATRONI_BENCH_* knobs). Prints a Markdown table on stdout, progress on stderr.
#
# Usage:  make build tools && bench/patroni.sh [> result.md]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -f dist/src/bin/etcd-ts.js ]] || { echo "bench/patroni.sh: etcd-ts is not built; run \`make build tools\` first" >&2; exit 1; }
# bench/ is not part of the main build: compile this script and the test helpers it uses into
# dist/bench (inside the repository, where the helpers find the repository root).
npx tsc --outDir dist/bench --rootDir . --target ES2022 --module commonjs --moduleResolution node \
  --strict --esModuleInterop --skipLibCheck --types node bench/patroni.ts
exec node dist/bench/bench/patroni.js
