#!/usr/bin/env bash
# The demo on a fresh machine: installs what it needs, starts a valkey-server, runs a
# small Django project against it, stops the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
.venv/bin/python demo/run.py
