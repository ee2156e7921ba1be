#!/usr/bin/env bash
# The side-by-side benchmarks on a fresh machine (each starts its own valkey-server).
#   bash scripts/bench.sh            sync workloads
#   bash scripts/bench.sh --async    async workloads at 1 and 50 in flight
#   bash scripts/bench.sh --cluster  cluster backends on a 6-node cluster
#   bash scripts/bench.sh --instructions  client instructions per call (valgrind's callgrind)
#   bash scripts/bench.sh --local    the client-side cache: hot keys, a 90/10 mix with a writer
#   bash scripts/bench.sh --telemetry  what OPENTELEMETRY and PROMETHEUS cost per call
#   bash scripts/bench.sh --herd     a hot key expiring under load: computations saved
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh test
script=bench/run.py
case "${1:-}" in
    --async) script=bench/run_async.py ;;
    --local) script=bench/run_local.py ;;
    --herd) script=bench/run_herd.py ;;
    --telemetry) script=bench/run_telemetry.py ;;
    --instructions)
        script=bench/instructions.py
        if ! command -v valgrind >/dev/null; then
            apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
        fi ;;
esac
[ "$script" = bench/run.py ] || shift
.venv/bin/python "$script" "$@"
