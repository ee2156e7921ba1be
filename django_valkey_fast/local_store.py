"""The client-side cache's store: replies kept in process memory, and the rules that
keep them true. No I/O here: the caching channels (``caching_channel.py``) ask it
before and after their round trips, and an invalidation listener
(``invalidation.py``) tells it what the server changed.

What it keeps: the raw reply of ``GET key`` (the bytes, or None for a missing key),
until the key's own expiry, under bounds of entries and bytes. What goes first when a
bound is reached is chosen by the CLOCK rule (second chance: an entry hit since the
last pass is moved to the back instead, an approximation of least-recently-used that
lets a hit take no lock: it reads the dict and sets a flag). Decoding happens per hit,
so no caller ever shares a mutable value with another.

Why a reply it keeps is never older than the server's last word on it:

- **Tracking.** Every read whose reply may be kept runs on a connection whose
  tracking redirects to the listener (``CLIENT TRACKING ON REDIRECT <id>`` in the
  same pipeline), so the server will tell the listener when the key changes.
- **Reads in flight.** A read takes a token before it is sent (:meth:`begin_read`);
  an invalidation of its key (or a flush) while it is in flight voids the token, and
  :meth:`finish_read` keeps nothing for a void token. The invalidation may reach the
  listener before or after the reply reaches the reader: either way the stale reply
  is not kept (or is dropped when the message arrives).
- **Liveness.** Hits are served only while the listener is connected and has proved,
  within ``max_staleness`` seconds, that it has read everything the server sent before
  (a PING's reply comes after them on the same connection). The listener losing its
  connection flushes everything and voids every token: its successor has a new id
  that earlier tracking does not redirect to.
- **This process's writes** drop their keys before they are sent and again when
  their reply arrives (voiding reads in flight in between): a read that starts after
  a write returned sees the write (read-your-writes within the process).
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["MISSING", "LocalStore"]

MISSING = object()  # lookup(): not in the store (None is a kept "no such key")
_NEVER = float("inf")


class _Read:
    """A read in flight: its token (identity) and the store epoch it started in."""

    __slots__ = ("epoch",)

    def __init__(self, epoch: int):
        self.epoch = epoch


class LocalStore:
    """Replies of one server kept in memory (thread-safe), with hit/miss counters."""

    def __init__(self, max_entries: int, max_bytes: int, max_staleness: float,
                 clock=time.monotonic):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_staleness = max_staleness
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [reply, deadline, size, hit since the last eviction pass], oldest first
        self._entries: dict = {}
        self._reads: dict = {}  # key -> _Read in flight
        self._bytes = 0
        self._epoch = 0  # +1 at every flush: reads that began before keep nothing
        self._live = False  # the listener is connected (hits need it)
        self._proven_at = -_NEVER  # when the listener last proved it was up to date
        self.hits = self.misses = self.invalidations = self.flushes = 0

    # -- reads ------------------------------------------------------------------------

    def usable(self) -> bool:
        """Whether a hit may be served now (listener up and recently proved)."""
        return self._live and self._clock() - self._proven_at <= self.max_staleness

    def lookup(self, key) -> Any:
        """The kept reply of ``GET key`` (None: no such key), or :data:`MISSING`."""
        now = self._clock()
        if self._live and now - self._proven_at <= self.max_staleness:
            entry = self._entries.get(key)  # (no lock: one dict read)
            if entry is not None:
                if entry[1] > now:
                    entry[3] = True
                    self.hits += 1
                    return entry[0]
                with self._lock:  # expired with its key
                    if self._entries.get(key) is entry:
                        self._remove(key)
        self.misses += 1
        return MISSING

    def begin_read(self, key) -> _Read:
        """A token for a read of ``key`` about to be sent (see :meth:`finish_read`)."""
        token = _Read(self._epoch)
        with self._lock:
            self._reads[key] = token
        return token

    def finish_read(self, key, token: _Read, reply, ttl_ms) -> None:
        """Keep ``reply`` (of ``GET key``, whose PTTL was ``ttl_ms``) if nothing voided
        ``token`` meanwhile and it fits."""
        size = len(reply) if reply is not None else 0
        if type(reply) is not bytes and reply is not None:
            return  # (an error reply, or a type this store does not keep)
        if ttl_ms == -2 and reply is not None:
            return  # gone between the GET and the PTTL: its invalidation is on its way
        deadline = _NEVER if ttl_ms < 0 else self._clock() + ttl_ms / 1000
        with self._lock:
            if self._reads.get(key) is not token:
                return  # voided, or a later read of the same key took over
            del self._reads[key]
            if token.epoch != self._epoch or size > self.max_bytes:
                return
            self._remove(key)
            entries = self._entries
            entries[key] = [reply, deadline, size, False]
            self._bytes += size
            while len(entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(entries))
                entry = entries.pop(oldest)
                if entry[3] and oldest != key:  # hit since the last pass: a second chance
                    entry[3] = False
                    entries[oldest] = entry
                else:
                    self._bytes -= entry[2]

    def abandon_read(self, key, token: _Read) -> None:
        """Forget ``token`` (its read failed)."""
        with self._lock:
            if self._reads.get(key) is token:
                del self._reads[key]

    # -- what changed ---------------------------------------------------------------

    def invalidate(self, keys) -> None:
        """The server (or a write of this process) says ``keys`` changed."""
        with self._lock:
            reads = self._reads
            for key in keys:
                self._remove(key)
                reads.pop(key, None)
            self.invalidations += 1

    def flush(self) -> None:
        """Forget everything and void every read in flight."""
        with self._lock:
            self._entries.clear()
            self._reads.clear()
            self._bytes = 0
            self._epoch += 1
            self.flushes += 1

    def connected(self) -> None:
        """The listener (re)connected: what was kept under its predecessor goes."""
        self.flush()
        self._live = True

    def disconnected(self) -> None:
        """The listener lost its connection: no hits until it is back and proved."""
        self._live = False
        self.flush()
        self._proven_at = -_NEVER

    def proved(self, as_of: float) -> None:
        """Everything the server sent before ``as_of`` (a clock reading) was read."""
        if as_of > self._proven_at:
            self._proven_at = as_of

    # -- inspection -------------------------------------------------------------------

    def stats(self) -> dict:
        """Counters and sizes, for tests, metrics and ``manage.py`` output."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries),
                    "bytes": self._bytes, "invalidations": self.invalidations,
                    "flushes": self.flushes, "live": self.usable()}

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]
