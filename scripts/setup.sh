#!/usr/bin/env bash
# Prepare a fresh machine: system packages the tests need, a virtualenv in .venv with
# the package installed in editable mode (extensions compiled) and its dev extra.
# Idempotent; sourced by test.sh, demo.sh and bench.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing ${need_apt[*]} (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
        # The package starts a system redis on 6379; the tests start their own servers.
        (command -v service >/dev/null && service redis-server stop >/dev/null 2>&1) || true
    else
        echo "missing: ${need_apt[*]} (install them, e.g. apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] || [ setup.py -nt .venv/.installed ]; then
    echo "== installing django-valkey-fast[dev] (compiles the extensions)"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e ".[dev]"
    touch .venv/.installed
else
    # Sources may have changed since: rebuild the extensions in place.
    .venv/bin/python setup.py -q build_ext --inplace >/dev/null 2>&1 || true
fi
