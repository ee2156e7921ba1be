"""The sync I/O step: write packed commands to one server and read the replies.

A ``Channel`` owns the connections of one valkey-py connection pool. Idle
connections wait in its own LIFO, so a command costs one ``poll(0)`` (the reuse
check), one ``send`` and one ``recv``: no per-call client object, none of
valkey-py's per-checkout ``connect()``/``can_read()`` work, and no ``poll`` before
each call on a socket with a timeout (the kernel keeps the timeout, see
:func:`django_valkey_fast._valkeypy.bind`). The round trip itself (take a
connection, write, read, give it back) is the ``_wire`` twin's (compiled, with a
pure-Python twin); this module keeps the connection bookkeeping and the rules.

Guarantees (docs/reliability.md):

- **At most once.** A connection is reused only if ``poll`` finds nothing to read on
  it (the server did not close it, and no stray reply waits there) and its reader
  holds no unread bytes (valkey-py's parser, which reads only the handshake and
  health-check PINGs, is checked right after those); otherwise it is closed and
  another is taken. A command is
  sent again only under :mod:`~django_valkey_fast.retry`'s rule: it never reached the
  server, or it only reads. A written write whose reply is lost raises.
- **Pool bounds.** At most ``max_connections`` connections exist; with a
  ``BlockingConnectionPool`` a caller waits up to the pool's ``timeout`` for one to
  come back (and is woken by the first connection released), then raises
  ``ConnectionError("No connection available.")``; a plain ``ConnectionPool``
  raises ``Too many connections`` at once, as valkey-py does.
- **Idle policy.** A connection idle for more than ``idle_timeout`` seconds (300) is
  closed when the next connection is given back to the channel, so a burst does not
  keep its connections open forever.

Channels are process-wide (one per pool) and forgotten in a forked child, whose
parent's sockets it must neither use nor close.
"""

from __future__ import annotations

import os
import threading
import time
import weakref

from valkey.connection import BlockingConnectionPool
from valkey.exceptions import ConnectionError, ReadOnlyError, ResponseError, TimeoutError

from django_valkey_fast._valkeypy import bind, raise_connect_failure
from django_valkey_fast import _wire
from django_valkey_fast._wire import (
    ChannelState, Link, acquire, collect, pack_command, pack_commands, release, write,
)
from django_valkey_fast.exceptions import CommandNotSent
from django_valkey_fast.retry import may_resend, refused_everywhere

__all__ = ["IDLE_TIMEOUT", "Channel", "SentPipeline", "channel_of", "channel_of_pool"]

_channels: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_channels_lock = threading.Lock()

_monotonic = time.monotonic


def channel_of(client) -> "Channel":
    """Return the process-wide channel of a valkey-py client's connection pool."""
    return channel_of_pool(client.connection_pool)


def channel_of_pool(pool) -> "Channel":
    """Return the process-wide channel of a valkey-py connection pool."""
    channel = _channels.get(pool)
    if channel is not None:
        return channel
    with _channels_lock:
        channel = _channels.get(pool)
        if channel is None:
            channel = _channels[pool] = Channel(pool)
        return channel


def _forget_connections():
    # In a forked child the parent's sockets must not be used (nor closed), and a
    # lock a parent thread held at fork time would never be released.
    global _channels_lock
    _channels_lock = threading.Lock()
    for channel in list(_channels.values()):
        channel._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections)


IDLE_TIMEOUT = 300.0  # seconds a connection may stay idle before it is closed


class Channel(ChannelState):
    """One server's connections, and the sync step that runs commands on them.

    ``idle_timeout`` (seconds, :data:`IDLE_TIMEOUT` unless set) is how long a
    connection may stay idle before it is closed."""

    def __init__(self, pool, pack_command=pack_command, pack_commands=pack_commands):
        self.idle_timeout = IDLE_TIMEOUT
        self.pool = pool
        # The RESP packers: the compiled or pure twins (the benchmark sets both).
        self.pack_command = pack_command
        self.pack_commands = pack_commands
        self._limit = getattr(pool, "max_connections", None) or 2 ** 31
        # A BlockingConnectionPool waits for a connection; others raise at the limit.
        self._blocking = isinstance(pool, BlockingConnectionPool)
        self._wait_timeout = pool.timeout if self._blocking else None
        self._reset()

    def _reset(self) -> None:
        # ``_idle`` is only ever changed in place (pop, append, remove): threads keep a
        # reference to it across waits.
        self._idle: list = []
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._waiting = 0
        self._open = 0

    # -- connections ---------------------------------------------------------------

    def _reserve(self, deadline) -> bool:
        """Wait (blocking pools) until a connection may be opened (True) or an idle one
        is back (False); raise ``ConnectionError`` at ``deadline`` (the pool's timeout)."""
        with self._lock:
            self._waiting += 1
            try:
                while not self._idle and self._open >= self._limit:
                    remaining = None if deadline is None else deadline - _monotonic()
                    if remaining is not None and remaining <= 0:
                        raise CommandNotSent("No connection available.")
                    self._returned.wait(remaining)
                if self._idle:
                    return False
                self._open += 1
                return True
            finally:
                self._waiting -= 1

    def _new_link(self) -> Link:
        if not self._blocking:  # (a blocking pool's _reserve counted it)
            with self._lock:
                self._open += 1
        try:
            connection = self.pool.get_connection("_")
        except BaseException as error:
            self._forget_one()
            raise_connect_failure(error)
        link = Link(connection)
        try:
            bind(link)
        except BaseException:
            self._close(link)
            raise
        return link

    def _forget_one(self) -> None:
        with self._lock:
            self._open -= 1
            if self._waiting:
                self._returned.notify()

    def _close_stale(self, now: float, limit: float) -> None:
        """Close the connections idle for more than ``limit`` seconds (the channel's
        ``idle_timeout``, as the round trip read it; the oldest are at the bottom of
        the LIFO)."""
        stale = []
        with self._lock:
            idle = self._idle
            while idle:
                oldest = idle[0]
                if now - oldest.since <= limit:
                    break
                try:
                    idle.remove(oldest)
                except ValueError:  # taken by another thread meanwhile
                    continue
                if now - oldest.since > limit:
                    stale.append(oldest)
                else:  # taken and given back meanwhile: still fresh
                    idle.append(oldest)
                    if self._waiting:
                        self._returned.notify()
        for link in stale:
            self._close(link)

    def _close(self, link: Link) -> None:
        try:
            link.connection.disconnect()
        finally:
            self.pool.release(link.connection)
            self._forget_one()

    # -- after a failed round trip -----------------------------------------------------

    def _failed(self, link: Link, error: BaseException, attempt: int, commands) -> None:
        """After ``link`` failed to run ``commands`` (``_wire.run``): give the link back
        or close it, and raise ``error`` unless the command may be sent again (only on
        the first ``attempt``, and only when the at-most-once rule allows)."""
        if isinstance(error, ReadOnlyError):
            # A write reached a replica, which refused it: after a failover this
            # connection points at the demoted primary, and so may the idle ones.
            # Reconnect (Sentinel names the new primary) and retry once, if no write
            # of a pipeline ran before the refusal.
            self._close(link)
            self.disconnect()
            refused = getattr(error, "pipeline_replies", None)
            if attempt or (refused is not None and not refused_everywhere(commands, refused)):
                raise error
        elif isinstance(error, ResponseError) or getattr(error, "replied", False):
            # The server's answer (LOADING and NOAUTH ones are ConnectionErrors to
            # valkey-py): the connection is in step, and the command is not resent.
            release(self, link)
            raise error
        else:
            # Interrupted (KeyboardInterrupt, a signal handler's exception...) or cut:
            # the reply may still come, so this connection is out of step.
            self._close(link)
            if not isinstance(error, ConnectionError) or isinstance(error, TimeoutError):
                raise error  # (a timeout is not waited out twice, even one that sent nothing)
            if attempt or not may_resend(error, commands):
                raise error

    # Run one command (a tuple of arguments) and return its reply; run several in one
    # round trip, error replies in place. Functions of the _wire twins: compiled, a
    # command costs no Python frame between the plan driver and the socket.
    call = _wire.call
    pipeline = _wire.pipeline

    # -- a pipeline in two halves: write to several servers before reading any --------

    def send_pipeline(self, commands) -> "SentPipeline":
        """Write a pipeline and return it, to read with :meth:`receive_pipeline`:
        the first half of :meth:`pipeline`, so that a caller (the Cluster driver) writes
        to every server before it waits for any. A connection that turns out closed
        before anything was written is replaced once, as :meth:`pipeline` does; every
        other failure is raised for the caller's own resend rule."""
        packed = self.pack_commands(commands)
        for attempt in (0, 1):
            link = acquire(self)
            try:
                write(link, packed, len(commands))
            except CommandNotSent:
                self._close(link)
                if attempt:
                    raise
            except BaseException:
                self._close(link)
                raise
            else:
                return SentPipeline(self, link, len(commands))
        raise AssertionError("unreachable")

    def receive_pipeline(self, sent: "SentPipeline"):
        """The replies of a pipeline :meth:`send_pipeline` wrote (error replies in place)."""
        link = sent.link
        if link is None:
            raise RuntimeError("this pipeline's replies were read or abandoned already")
        sent.link = None
        try:
            results = collect(link, sent.replies)
        except ResponseError as error:
            if isinstance(error, ReadOnlyError):  # a demoted primary: reconnect next time
                self._close(link)
                self.disconnect()
            else:
                release(self, link)
            raise
        except BaseException:
            self._close(link)  # out of step: its replies may still come
            raise
        release(self, link)
        return results

    def disconnect(self):
        """Close the idle connections (they are reopened on next use)."""
        idle = self._idle
        while True:
            try:
                link = idle.pop()
            except IndexError:
                return
            self._close(link)

    def idle_count(self) -> int:
        """How many connections wait idle (for tests and diagnostics)."""
        return len(self._idle)

    def open_count(self) -> int:
        """How many connections this channel holds, idle or in use."""
        return self._open


class SentPipeline:
    """A pipeline written by :meth:`Channel.send_pipeline`, its replies not read yet."""

    __slots__ = ("channel", "link", "replies")

    def __init__(self, channel: Channel, link: Link, replies: int):
        self.channel = channel
        self.link: Link | None = link
        self.replies = replies

    def abandon(self) -> None:
        """Close its connection unread (the caller gave up: its replies may still come)."""
        link, self.link = self.link, None
        if link is not None:
            self.channel._close(link)
