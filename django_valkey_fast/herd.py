"""Herd protection (django-valkey's ``HerdClient`` format), written once for sync and async.

A value stored with a timeout is kept ``CACHE_HERD_TIMEOUT`` seconds (default 60)
longer than asked, packed as ``(Marker(), value, refresh_at)``. Once ``refresh_at``
has passed, readers are told "missing" with a probability that grows until the herd
timeout is used up, so one of them recomputes while the others keep being served the
old value, instead of every caller recomputing at the same instant.

The marker pickles as ``django_valkey.base_client.Marker``, the name django-valkey
writes, so both packages read each other's herd values. When django-valkey is not
installed, a minimal module of that name holding only the marker class is
registered so that pickle can resolve it.

Ints and floats are stored raw (not packed): django-valkey's herd client reads them
back as they are, and ``incr``/``decr`` stay atomic in the server.
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import ImproperlyConfigured

from django_valkey_fast.operations import (
    Operations, Plan, PlanHost, Timeout, operation, seconds_number,
)

__all__ = ["EarlyRecompute", "HerdHost", "HerdOperations", "Marker", "early_recompute_for"]


def _marker_class():
    try:
        from django_valkey.base_client import Marker as PeerMarker  # a mixed fleet

        return PeerMarker
    except ImportError:
        pass

    class Marker:
        """Marks a herd-packed value (pickled as django-valkey's marker)."""

    Marker.__module__ = "django_valkey.base_client"
    Marker.__qualname__ = "Marker"
    package = sys.modules.setdefault("django_valkey", types.ModuleType("django_valkey"))
    package.__path__ = getattr(package, "__path__", [])
    module = types.ModuleType("django_valkey.base_client",
                              "Herd marker name registered by django-valkey-fast.")
    module.Marker = Marker
    sys.modules.setdefault("django_valkey.base_client", module)
    package.base_client = sys.modules["django_valkey.base_client"]
    return sys.modules["django_valkey.base_client"].Marker


Marker = _marker_class()
_MISSING = object()


def _stale(seconds_past: float, herd_timeout: int) -> bool:
    # django-valkey's rule: certain at the end of the herd window, random before.
    if seconds_past >= herd_timeout:
        return True
    return seconds_past + random.randint(1, herd_timeout) >= herd_timeout


class EarlyRecompute:
    """Probabilistic early recomputation for the herd clients' ``get_or_set`` (the
    XFetch rule of Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache
    Stampede Prevention", VLDB 2015).

    A reader of a value due for refresh at ``refresh_at`` recomputes it now when
    ``now - delta * beta * ln(U) >= refresh_at`` (``U`` uniform in (0, 1]), where
    ``delta`` is how long computing it took last time: the probability grows as the
    refresh time nears, sooner for values slow to compute, so one reader usually
    refreshes a hot value before it is due while the others are served the current
    one. ``beta`` above 1 favours earlier refreshes. ``delta`` is learned per key in
    this process, by every client alike (the stored format stays django-valkey's,
    which has no place for it): until a process has computed a key once, its readers
    do not refresh early.
    """

    MAX_KEYS = 10_000  # durations remembered (least recently computed forgotten first)
    _shared: OrderedDict = OrderedDict()  # server key -> seconds its last computation took
    _shared_lock = threading.Lock()

    def __init__(self, beta: float, random_number=random.random,
                 durations: OrderedDict | None = None):
        self.beta = beta
        self._random = random_number
        self._durations = EarlyRecompute._shared if durations is None else durations
        self._lock = EarlyRecompute._shared_lock if durations is None else threading.Lock()

    def due(self, key: str, refresh_at: float | None, now: float) -> bool:
        """Whether this reader recomputes ``key``'s value now, before ``refresh_at``."""
        delta = self._durations.get(key)
        if delta is None or refresh_at is None:
            return False
        return now - delta * self.beta * math.log(1.0 - self._random()) >= refresh_at

    def computed(self, key: str, seconds: float) -> None:
        """Computing ``key``'s value took ``seconds``."""
        with self._lock:
            self._durations[key] = seconds
            self._durations.move_to_end(key)
            while len(self._durations) > self.MAX_KEYS:
                self._durations.popitem(last=False)


def early_recompute_for(options: dict) -> EarlyRecompute | None:
    """``OPTIONS["EARLY_RECOMPUTE_BETA"]`` (a number above 0; 1 is the usual choice)
    as an EarlyRecompute, or None when it is not set (off)."""
    beta = options.get("EARLY_RECOMPUTE_BETA")
    if beta is None or beta is False:
        return None
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta <= 100:
        raise ImproperlyConfigured(
            f"OPTIONS['EARLY_RECOMPUTE_BETA'] is a number in (0, 100], not {beta!r}")
    return EarlyRecompute(float(beta))


class HerdHost(PlanHost):
    """The herd helpers: what a herd client adds for its plans (packing, and adding
    to a packed number)."""

    @property
    def _herd_timeout(self) -> int:
        return getattr(settings, "CACHE_HERD_TIMEOUT", 60)

    def _pack(self, value, timeout):
        return (Marker(), value, int(timeout or self.default_timeout) + int(time.time()))

    def _unpack(self, value):
        """``(value, stale)``: the stored value, and whether this reader should refresh it."""
        try:
            marker, unpacked, refresh_at = value
        except (ValueError, TypeError):
            return value, False
        if not isinstance(marker, Marker):
            return value, False
        now = time.time()
        if refresh_at < now:
            return unpacked, _stale(now - refresh_at, self._herd_timeout)
        return unpacked, False

    def _seconds(self, timeout):
        if timeout is DEFAULT_TIMEOUT:
            return self.default_timeout
        return None if timeout is None else seconds_number(timeout)

    def _herded(self, value, timeout):
        """``(stored value, stored timeout)`` for a herd write."""
        seconds = self._seconds(timeout)
        if seconds is None or seconds <= 0 or type(value) in (int, float):
            return value, timeout
        return self._pack(value, seconds), seconds + self._herd_timeout

    def _added(self, stored, delta):
        # A django-valkey herd client packs numbers too: add inside the pack.
        value, _ = self._unpack(stored)
        value = value + delta
        if isinstance(stored, tuple) and len(stored) == 3 and isinstance(stored[0], Marker):
            return (stored[0], value, stored[2]), value
        return value, value


class HerdOperations(HerdHost, Operations):
    """The cache operations with herd packing on values that have a timeout."""

    @operation(write=False, fallback=lambda bound: bound.get("default"))
    def get(self, key: Any, default: Any = None, version: int | None = None) -> Plan[Any]:
        """The value of ``key``; ``default`` if missing, or stale for this reader."""
        value = yield from Operations.get(self, key, _MISSING, version)
        if value is _MISSING:
            return default
        value, stale = self._unpack(value)
        return default if stale else value

    @operation(write=False, fallback=lambda bound: (bound.get("default"), None))
    def _get_refresh_at(self, key: Any, default: Any = None,
                        version: int | None = None) -> Plan[tuple]:
        """``(get's answer, when the value is due for its refresh)``: the refresh time
        (a ``time.time()``) of a herd-packed value, None for any other."""
        stored = yield from Operations.get(self, key, _MISSING, version)
        if stored is _MISSING:
            return default, None
        value, stale = self._unpack(stored)
        if stale:
            return default, None
        refresh_at = stored[2] if type(stored) is tuple and len(stored) == 3 else None
        return value, refresh_at

    @operation(write=True, fallback=False)
    def set(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
            version: int | None = None, nx: bool = False, xx: bool = False) -> Plan[bool]:
        """Store ``value``, herd-packed when it has a timeout."""
        value, timeout = self._herded(value, timeout)
        return (yield from Operations.set(self, key, value, timeout, version, nx, xx))

    @operation(write=False, fallback=lambda _: {})
    def get_many(self, keys: Iterable[Any], version: int | None = None) -> Plan[dict[Any, Any]]:
        """The values of ``keys`` that exist and are not stale for this reader."""
        found = yield from Operations.get_many(self, keys, version)
        fresh = {}
        for key, value in found.items():
            value, stale = self._unpack(value)
            if not stale:
                fresh[key] = value
        return fresh

    mget = get_many

    @operation(write=True, fallback=lambda bound: list(bound["data"]))
    def set_many(self, data: Mapping[Any, Any], timeout: Timeout = DEFAULT_TIMEOUT,
                 version: int | None = None) -> Plan[list]:
        """Store every item of ``data``, herd-packed, in one round trip."""
        stored_timeout = timeout
        packed = {}
        for key, value in data.items():
            packed[key], stored_timeout = self._herded(value, timeout)
        return (yield from Operations.set_many(self, packed, stored_timeout, version))

    @operation(write=True, fallback=False)
    def touch(self, key: Any, timeout: Timeout = DEFAULT_TIMEOUT,
              version: int | None = None) -> Plan[bool]:
        """Give ``key`` a new timeout (re-packing a herd value); True if it exists."""
        nkey = self._key(key, version)
        reply = yield ("GET", nkey)
        if reply is None:
            return False
        value, _ = self._unpack(self.decode(reply, nkey))
        if type(value) in (int, float):
            return (yield from Operations.touch(self, key, timeout, version))
        return (yield from self.operations.set(self, key, value, timeout, version))


HerdOperations.operations = HerdOperations
