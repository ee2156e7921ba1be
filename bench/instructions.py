"""Client instructions per call, counted by valgrind's callgrind: the deterministic column.

Timed ratios on a shared two-core VM move by 10-20% between runs, more than some targets'
margins. Instructions executed by the client process do not: the same binary with the
same inputs runs the same instructions whatever the neighbours do. For every contender
of :mod:`bench.run` (each in a process of its own under callgrind, the pure build with
``DJANGO_VALKEY_FAST_NO_EXTENSIONS=1``) and every chosen workload, the child runs the
operation N times, then 3N times, marking each phase with a call callgrind dumps its
counters at; the cost of one call is the difference over 2N, so start-up, connection and
whatever a phase does once cancel out. Only user-space instructions of the client are
counted: the kernel's share of a round trip (syscalls) and the server are not.

    .venv/bin/python bench/instructions.py [--calls 200] [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.run import BACKENDS, BASELINE, FLOOR, PURE, PER_REQUEST  # noqa: E402

DEFAULT_WORKLOADS = ("get 100B", PER_REQUEST, "set 100B", "get 30KB", "set 30KB",
                     "get_many 100", "set_many 100")
CONTENDERS = ("django-valkey-fast", PURE, BASELINE, "django-redis", "Django RedisCache",
              "valkey-py", FLOOR)
WARMUP = 20


def _mark() -> None:
    """The phase marker: callgrind dumps its counters when os_getppid is entered."""
    os.getppid()


def child(name: str, location: str, loads: list, calls: int) -> None:
    """Under callgrind: for each workload, warm up, then N calls, then 3N, marked."""
    from bench.run import Contender, RawValkey, configure, workloads

    if name in BACKENDS:
        configure(location, names=[name])
        from django.core.cache import caches

        alias = BACKENDS[name][0]
        contender = Contender(caches[alias], alias)
    else:
        configure(location, names=[])
        if name == FLOOR:
            from bench.floor import BareSocket

            contender = Contender(BareSocket(location))
        else:
            contender = Contender(RawValkey(location))
    import django_valkey_fast

    assert django_valkey_fast.COMPILED == (name != PURE), "wrong build loaded"
    chosen = workloads()
    for workload in loads:
        contender.loads = {workload: chosen[workload]}
        contender.setup(workload)
        contender.measure(workload, WARMUP)
        _mark()
        contender.measure(workload, calls)
        _mark()
        contender.measure(workload, 3 * calls)
        _mark()


_TOTAL = re.compile(rb"^(?:summary|totals): (\d+)", re.M)


def _dumped(path: str) -> int:
    with open(path, "rb") as handle:
        found = _TOTAL.search(handle.read())
    if found is None:
        raise RuntimeError(f"no totals in {path}")
    return int(found.group(1))


def count(name: str, location: str, loads: list, calls: int) -> dict:
    """Workload -> instructions per call of contender ``name``, counted by callgrind."""
    env = dict(os.environ)
    if name == PURE:
        env["DJANGO_VALKEY_FAST_NO_EXTENSIONS"] = "1"
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "-q", "--dump-before=os_getppid",
             f"--callgrind-out-file={out}", sys.executable, os.path.abspath(__file__),
             "--child", name, "--location", location, "--calls", str(calls),
             "--workloads", ",".join(loads)],
            env=env, check=True)
        # out.1 .. out.3k: (warm-up, N calls, 3N calls) per workload; out: the exit.
        dumps = sorted(glob.glob(out + ".*"), key=lambda path: int(path.rsplit(".", 1)[1]))
        if len(dumps) != 3 * len(loads):
            raise RuntimeError(f"{name}: {len(dumps)} dumps for {len(loads)} workloads "
                               "(something else called os.getppid?)")
        totals = [_dumped(path) for path in dumps]
    return {workload: (totals[3 * i + 2] - totals[3 * i + 1]) / (2 * calls)
            for i, workload in enumerate(loads)}


def report(loads: list, counts: dict) -> str:
    """Markdown: instructions per call, and ratios to django-valkey and to the floor."""
    lines = ["| workload | backend | instructions per call | vs django-valkey | vs floor |",
             "|---|---|---:|---:|---:|"]
    for workload in loads:
        base, floor = counts[BASELINE][workload], counts[FLOOR][workload]
        for name in counts:
            mine = counts[name][workload]
            lines.append(f"| {workload} | {name} | {mine:,.0f} | {mine / base:.2f}x | "
                         f"{mine / floor:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", help="use this server instead of starting one")
    parser.add_argument("--calls", type=int, default=200, help="N (the phases run N and 3N)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS))
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--markdown", metavar="PAGE",
                        help="also write the table into PAGE (docs/performance.md)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    loads = args.workloads.split(",")
    if args.child:
        return child(args.child, args.location, loads, args.calls)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    from bench.run import server_location, server_version

    names = args.contenders.split(",")
    for required in (BASELINE, FLOOR):
        if required not in names:
            names.append(required)
    with server_location(args.location) as location:
        counts = {}
        for name in names:
            print(f"counting {name} ...", file=sys.stderr)
            counts[name] = count(name, location, loads, args.calls)
        server = server_version(location)
    table = report(loads, counts)
    print(table)
    if args.markdown:
        from bench.report import environment, write_section

        text = environment(server, 1).replace(
            "1 rounds, medians.", f"callgrind, N = {args.calls} and 3N calls per workload.")
        write_section(args.markdown, "instructions", text + "\n\n" + table)


if __name__ == "__main__":
    main()
