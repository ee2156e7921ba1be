"""Continuous writers for failover tests: a sync thread and an asyncio thread write
distinct keys to one cache without pause, and record which writes were acknowledged,
which raised, and how long each call took."""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["ContinuousWriters"]


class ContinuousWriters:
    """Writes ``{key_format.format(side, n)}`` = n from a sync and an async thread."""

    def __init__(self, cache, key_format: str = "w-{}-{}"):
        self.cache = cache
        self.key_format = key_format
        # (key, call started, call returned): a call that started after a fault and
        # was acknowledged certainly ran after it (its return may be recorded late).
        self.acknowledged: dict = {"sync": [], "async": []}
        self.failed: dict = {"sync": 0, "async": 0}
        self.longest_call = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sync_side, daemon=True),
                         threading.Thread(target=lambda: asyncio.run(self._async_side()),
                                          daemon=True)]

    def start(self) -> "ContinuousWriters":
        """Start both writers."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop both writers and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _record(self, side, key, started, ok):
        now = time.monotonic()
        self.longest_call = max(self.longest_call, now - started)
        if ok:
            self.acknowledged[side].append((key, started, now))
        else:
            self.failed[side] += 1

    def _sync_side(self):
        n = 0
        while not self._stop.is_set():
            n += 1
            key, started = self.key_format.format("sync", n), time.monotonic()
            try:
                ok = self.cache.set(key, n) is True
            except Exception:  # noqa: BLE001 - a failover in progress
                ok = False
                time.sleep(0.05)
            self._record("sync", key, started, ok)

    async def _async_side(self):
        n = 0
        while not self._stop.is_set():
            n += 1
            key, started = self.key_format.format("async", n), time.monotonic()
            try:
                ok = await self.cache.aset(key, n) is True
            except Exception:  # noqa: BLE001 - a failover in progress
                ok = False
                await asyncio.sleep(0.05)
            self._record("async", key, started, ok)

    def resumed_after(self, moment: float):
        """Seconds from ``moment`` until a call started after it was acknowledged, on
        *both* sides, or None if one side has not resumed."""
        firsts = []
        for side in ("sync", "async"):
            after = [done for _, started, done in self.acknowledged[side] if started > moment]
            if not after:
                return None
            firsts.append(min(after))
        return max(firsts) - moment

    def wait_resumed(self, moment: float, timeout: float):
        """Poll until both sides wrote after ``moment``; return the seconds it took."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resumed = self.resumed_after(moment)
            if resumed is not None:
                return resumed
            time.sleep(0.05)
        return None

    def lost(self, read_many, before: float | None = None) -> int:
        """How many acknowledged writes (started before ``before``, if given) the cache
        no longer holds; ``read_many(keys)`` returns the dict of those it holds."""
        keys = [key for side in ("sync", "async") for key, started, _ in self.acknowledged[side]
                if before is None or started < before]
        held = {}
        for start in range(0, len(keys), 500):
            held.update(read_many(keys[start:start + 500]))
        return len(keys) - len(held)

    def through(self, fault, timeout: float):
        """Write, run ``fault()`` once 200 writes are in, and keep writing until both
        sides have resumed (plus a little more); return ``(fault time, seconds to
        resume or None)``. The writers are stopped on return."""
        try:
            deadline = time.monotonic() + 10
            while self.count() < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            fault()
            moment = time.monotonic()
            resumed = self.wait_resumed(moment, timeout)
            if resumed is not None:
                time.sleep(0.3)  # some writes after the failover too
            return moment, resumed
        finally:
            self.stop()

    def count(self) -> int:
        """Acknowledged writes so far."""
        return sum(len(acks) for acks in self.acknowledged.values())
