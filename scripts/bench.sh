#!/usr/bin/env bash
# The side-by-side benchmark on a fresh machine (starts its own valkey-server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
.venv/bin/python bench/run.py "$@"
