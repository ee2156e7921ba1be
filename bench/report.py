"""Write benchmark tables into docs/performance.md, with what they were measured on.

Each script replaces its own section of the page, between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``, so the page holds the scripts' output, never numbers pasted
by hand.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from importlib import metadata

__all__ = ["environment", "pin", "write_section"]

PACKAGES = ("Django", "valkey", "libvalkey", "django-valkey", "django-redis", "redis")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_placement = "client and servers placed by the scheduler"


def pin(server_pids) -> None:
    """Put the servers on the first CPU and this process (with the processes it starts
    from now on: the pure-Python worker) on the others, on a machine with two CPUs or
    more. Every contender then measures the same way: a scheduler that puts the client
    beside the server makes each round trip wait for a context switch, and did so for
    one process of a run and not another."""
    global _placement
    if not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    for pid in server_pids:
        os.sched_setaffinity(pid, {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))
    _placement = (f"servers pinned to CPU {cpus[0]}, clients to CPU "
                  f"{','.join(map(str, cpus[1:]))}")


def environment(server_version: str, rounds: int) -> str:
    """A paragraph naming the commit, versions, machine and rounds of a run."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return (f"Measured {datetime.date.today().isoformat()} at commit `{commit}`: "
            f"{server_version}; Python {platform.python_version()}, {versions}; "
            f"{os.cpu_count()} CPUs ({_cpu()}), {_placement}; {rounds} rounds, medians.")


def write_section(path: str, name: str, text: str) -> None:
    """Replace section ``name`` of the Markdown file ``path`` with ``text``."""
    with open(path) as handle:
        page = handle.read()
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{text.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(page) is None:
        raise SystemExit(f"{path} has no {start} ... {end} section")
    with open(path, "w") as handle:
        handle.write(pattern.sub(lambda _: block, page))
