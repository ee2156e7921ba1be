"""The client-side cache's store: replies kept in process memory, and the rules that
keep them true. No I/O here: the caching channels (``caching_channel.py``) ask it
before and after their round trips, and an invalidation listener
(``invalidation.py``) tells it what the server changed.

What it keeps: the raw reply of ``GET key`` (the bytes, or None for a key that does
not exist), until the key's own expiry (counted from when the read was sent), under
bounds of entries and bytes (reply, key and a per-entry estimate). What goes first
when a bound is reached is chosen by the CLOCK rule (second chance: an entry hit since
the last pass is moved to the back instead, at most once per eviction: an
approximation of least-recently-used that lets a hit take no lock; it reads the dict
and sets a flag). Decoding happens per hit, so no caller ever shares a mutable value
with another. The counters are plain increments: approximate under contention.

Why a reply it keeps is never older than the server's last word on it:

- **Tracking.** Every read whose reply may be kept runs on a connection whose
  tracking redirects to the listener (``CLIENT TRACKING ON REDIRECT <id> OPTIN`` and
  ``CLIENT CACHING YES`` in the same pipeline), so the server will tell the listener
  when the key changes.
- **Reads in flight.** A read takes a token before it is sent (:meth:`begin_read`);
  an invalidation of its key (or a flush) while it is in flight voids the token, and
  :meth:`finish_read` keeps nothing for a void token. The invalidation may reach the
  listener before or after the reply reaches the reader: either way the stale reply
  is not kept (or is dropped when the message arrives). Of overlapping reads of one
  key, only the latest-started may keep its reply, and only if those that finished
  before it were told the same; a read told otherwise drops what is kept, so no
  caller reads a value older than one it was given.
- **Liveness.** Hits are served only while the listener is connected and has proved,
  within ``max_staleness`` seconds, that it has read everything the server sent before
  (a PING's reply comes after them on the same connection), while its socket
  holds nothing it has not read (a message that arrived waits for the listener
  thread, which waits for the GIL: a hit must not be served meanwhile), and while the
  listener is not between taking bytes from the socket and applying them (it says
  so before it reads: :meth:`reading`). The listener losing its
  connection flushes everything and voids every token: its successor has a new id
  that earlier tracking does not redirect to.
- **This process's writes** drop their keys before they are sent and again when
  their reply arrives (voiding reads in flight in between): a read that starts after
  a write returned sees the write (read-your-writes within the process).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

__all__ = ["ENTRY_OVERHEAD", "MISSING", "LocalStore"]

MISSING = object()  # lookup(): not in the store (None is a kept "no such key")
_NEVER = float("inf")
# Bytes counted per entry besides its reply and key (the entry, its dict slot): an
# estimate, so that MAX_BYTES bounds many small entries too.
ENTRY_OVERHEAD = 120


_UNSEEN = object()
_CONFLICT = object()  # overlapping reads were told different things


class _Read:
    """A read in flight: its token (identity), the store epoch it started in, when it
    was sent (a kept reply's expiry counts from then, not from its arrival), and what
    an overlapping read of the same key that finished first was answered."""

    __slots__ = ("epoch", "sent_at", "seen")

    def __init__(self, epoch: int, sent_at: float):
        self.epoch = epoch
        self.sent_at = sent_at
        self.seen = _UNSEEN  # or a reply; None-able, so a marker of its own


class LocalStore:
    """Replies of one server kept in memory (thread-safe), with hit/miss counters."""

    def __init__(self, max_entries: int, max_bytes: int, max_staleness: float,
                 clock=time.monotonic):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_staleness = max_staleness
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [reply, deadline, size, hit since the last eviction pass], oldest
        # first. Changed under the lock; a hit reads it without (one dict read) and
        # sets the flag.
        self._entries: OrderedDict = OrderedDict()
        self._reads: dict = {}  # key -> _Read in flight
        self._bytes = 0
        self._epoch = 0  # +1 at every flush: reads that began before keep nothing
        self._live = False  # the listener is connected (hits need it)
        # Whether the listener's socket holds bytes it has not read yet (a C call, set
        # by connected(); int() is 0): a hit waits for them, they may invalidate it.
        self._unread: Any = int
        # The listener has taken (or is taking) bytes from its socket that it has not
        # applied yet: no hit either. Asked after _unread() (see lookup).
        self._reading = False
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
                    # An invalidation may be waiting for the listener thread (for the
                    # GIL: up to its switch interval, 5 ms) in its socket, or in its
                    # hands: no hit until it is applied. The socket first: bytes that
                    # left it after it was asked left while _reading was set, and
                    # _reading clear then means they were applied (the entry is read
                    # again below).
                    if self._unread() or self._reading:
                        return MISSING
                    still: Any = self._entries.get(key)
                    if still is not entry:  # the listener ran meanwhile and dropped it
                        return MISSING
                    entry[3] = True
                    self.hits += 1
                    return entry[0]
                with self._lock:  # expired with its key
                    if self._entries.get(key) is entry:
                        self._remove(key)
        return MISSING

    def lookup_many(self, keys) -> list:
        """:meth:`lookup` of each of ``keys``: their kept replies, :data:`MISSING` where
        there is none. The clock and the listener's socket are asked once for them all,
        after every entry is read (as ``lookup`` asks after its one): bytes waiting on
        the socket then mean no hit at all, and an entry the listener dropped meanwhile
        (it ran while the entries were read, and applied what it read) is no hit."""
        found = [MISSING] * len(keys)
        now = self._clock()
        if not (self._live and now - self._proven_at <= self.max_staleness):
            return found
        entries = self._entries
        hits = []
        expired = []
        for position, key in enumerate(keys):
            entry = entries.get(key)  # (no lock: one dict read each)
            if entry is not None:
                if entry[1] > now:
                    hits.append((position, key, entry))
                else:
                    expired.append((key, entry))
        if hits and (self._unread() or self._reading):
            hits = []  # (an invalidation may be waiting for the listener thread)
        served = 0
        for position, key, entry in hits:
            still: Any = entries.get(key)
            if still is entry:  # (not invalidated, nor flushed, since read)
                entry[3] = True
                found[position] = entry[0]
                served += 1
        self.hits += served
        if expired:
            with self._lock:  # expired with their keys
                for key, entry in expired:
                    if entries.get(key) is entry:
                        self._remove(key)
        return found

    def begin_read(self, key) -> _Read:
        """A token for a read of ``key`` about to be sent (see :meth:`finish_read`);
        counts a miss."""
        token = _Read(self._epoch, self._clock())
        with self._lock:
            self._reads[key] = token
            self.misses += 1
        return token

    def finish_read(self, key, token: _Read, reply, ttl_ms) -> None:
        """Keep ``reply`` (of ``GET key``, whose PTTL was ``ttl_ms``; None if that is
        unknown) if nothing voided ``token`` meanwhile, no overlapping read of the key
        was told otherwise, and it fits. Whatever is not kept, a kept reply that differs
        from ``reply`` is dropped: this read's caller must not be served an older
        value next (90, then 89), as it could while the message that would drop that
        reply waits for the listener thread."""
        if ttl_ms is None:
            keep = False
        elif reply is None:
            keep = ttl_ms == -2  # (nil for a key that exists: not a string, for MGET)
        else:
            # (bytes only; a key gone between the GET and the PTTL: its invalidation is
            # on its way)
            keep = type(reply) is bytes and ttl_ms != -2
        with self._lock:
            current = self._reads.get(key)
            if current is token:
                del self._reads[key]
                # Kept only if no flush came meanwhile and no overlapping read that
                # finished first was told otherwise (then keep neither).
                if keep and token.epoch == self._epoch and (
                        token.seen is _UNSEEN or token.seen == reply):
                    size = (len(reply) if type(reply) is bytes else 0) + len(key) \
                        + ENTRY_OVERHEAD
                    if size <= self.max_bytes:
                        deadline = _NEVER if ttl_ms < 0 else token.sent_at + ttl_ms / 1000
                        self._remove(key)
                        self._make_room(size)
                        self._entries[key] = [reply, deadline, size, False]
                        self._bytes += size
                        return
            elif current is not None:
                # Voided or taken over by a later read of the key: overlapping reads may
                # run in either order in the server, and what this one was told must not
                # be contradicted by what the later one keeps.
                current.seen = reply if current.seen is _UNSEEN or \
                    current.seen == reply else _CONFLICT
            entry = self._entries.get(key)
            if entry is not None and entry[0] != reply:
                self._remove(key)

    def _make_room(self, size: int) -> None:
        # (under the lock) Evict until one entry of ``size`` bytes fits, by the CLOCK
        # rule: the oldest goes unless it was hit since the last pass (it moves to the
        # back, once per call at most: then the oldest goes whatever its flag).
        entries = self._entries
        chances = len(entries)
        while entries and (len(entries) >= self.max_entries
                           or self._bytes + size > self.max_bytes):
            key, entry = next(iter(entries.items()))
            if entry[3] and chances:
                entry[3] = False
                entries.move_to_end(key)
                chances -= 1
            else:
                del entries[key]
                self._bytes -= entry[2]

    def abandon_read(self, key, token: _Read) -> None:
        """Forget ``token`` unless its reply was kept (called when every read ends)."""
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

    def after_fork(self) -> None:
        """In a forked child: a lock of its own (the parent's listener thread may have
        held this one at the fork), nothing kept, no hits until its own listener."""
        self._lock = threading.Lock()
        self.disconnected()

    def connected(self, unread=int) -> None:
        """The listener (re)connected: what was kept under its predecessor goes.
        ``unread()`` tells whether its socket holds bytes it has not read yet."""
        self.flush()
        self._unread = unread
        self._reading = False
        self._live = True

    def disconnected(self) -> None:
        """The listener lost its connection: no hits until it is back and proved."""
        self._live = False
        self.flush()
        self._proven_at = -_NEVER
        self._unread = int
        self._reading = False

    def reading(self, busy: bool) -> None:
        """The listener is about to take bytes from its socket (True), or has applied
        everything it took (False)."""
        self._reading = busy

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
