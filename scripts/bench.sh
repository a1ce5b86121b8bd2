#!/usr/bin/env bash
# The benchmark suite (see benchmarks/bench.py): make bench [PART=recovery|vm|sysctl|rollout|fleet|harm|supervisord|recovery,vm]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/venv.sh
scripts/testbed.sh all
exec "${NETSVC_VENV:-$top/.venv}/bin/python" benchmarks/bench.py "$@"
