#!/usr/bin/env bash
# Operator benchmark: create a 3-member EtcdCluster, scale it 3 → 5 → 3, on a real control plane with the
# test kubelet (see bench/operator.ts for what is measured and OPERATOR_BENCH_RUNS). Prints a Markdown
# section on stdout, progress on stderr.
#
# Usage:  make build k8s-tools && bench/operator.sh [> result.md]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -f dist/src/bin/etcd-ts.js && -f dist/operator/main.js ]] || { echo "bench/operator.sh: etcd-ts or its operator is not built; run \`make build\` first" >&2; exit 1; }
# bench/ is not part of the main build: compile this script and the test helpers it uses into
# dist/bench (inside the repository, where the helpers find the repository root).
npx tsc --outDir dist/bench --rootDir . --target ES2022 --module commonjs --moduleResolution node \
  --strict --esModuleInterop --skipLibCheck --types node bench/operator.ts
exec node dist/bench/bench/operator.js
