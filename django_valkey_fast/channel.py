"""The sync I/O step: write packed commands to one server and read the replies.

A ``Channel`` owns the connections of one valkey-py connection pool. Idle
connections wait in its own LIFO, so a command costs one ``sendall`` and the
parser's read, plus one ``poll(0)`` before a connection is reused: no per-call client
object, none of valkey-py's per-checkout ``connect()``/``can_read()`` work.

Guarantees (docs/reliability.md):

- **At most once.** A connection is reused only if ``poll`` finds nothing to read on
  it (the server did not close it, and no stray reply waits there) and its parser
  holds no unread bytes; otherwise it is closed and another is taken. A command is
  sent again only under :mod:`~django_valkey_fast.retry`'s rule: it never reached the
  server, or it only reads. A written write whose reply is lost raises.
- **Pool bounds.** At most ``max_connections`` connections exist; with a
  ``BlockingConnectionPool`` a caller waits up to the pool's ``timeout`` for one to
  come back (and is woken by the first connection released), then raises
  ``ConnectionError("No connection available.")``; a plain ``ConnectionPool``
  raises ``Too many connections`` at once, as valkey-py does.
- **Idle policy.** A connection idle for more than ``idle_timeout`` seconds (300) is
  closed the next time the channel is used, so a burst does not keep its connections
  open forever.

Channels are process-wide (one per pool) and forgotten in a forked child, whose
parent's sockets it must neither use nor close.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import weakref

from valkey.connection import BlockingConnectionPool
from valkey.exceptions import ConnectionError, ReadOnlyError, ResponseError, TimeoutError

from django_valkey_fast._wire import pack_command, pack_commands
from django_valkey_fast.exceptions import CommandNotSent
from django_valkey_fast.retry import may_resend

__all__ = ["Channel", "channel_for", "channel_for_pool"]

_channels: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_channels_lock = threading.Lock()

_POLLIN = select.POLLIN
_monotonic = time.monotonic


def channel_for(client) -> "Channel":
    """Return the process-wide channel of a valkey-py client's connection pool."""
    return channel_for_pool(client.connection_pool)


def channel_for_pool(pool) -> "Channel":
    """Return the process-wide channel of a valkey-py connection pool."""
    try:
        return _channels[pool]
    except KeyError:
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


def _parser_buffer_check(parser):
    """A function telling whether ``parser`` holds bytes it has not returned yet.

    valkey-py's parsers keep what they read ahead in their own buffer, out of
    ``poll``'s sight: the libvalkey reader, or the pure parsers' ``SocketBuffer``.
    """
    reader = getattr(parser, "_reader", None)
    if reader is not None and hasattr(reader, "has_data"):
        return reader.has_data
    buffer = getattr(parser, "_buffer", None)
    if buffer is not None and hasattr(buffer, "unread_bytes"):
        return buffer.unread_bytes
    return _nothing


def _nothing():
    return False


class _Link:
    """A connection with what the channel needs to check it cheaply before reuse."""

    __slots__ = ("connection", "sock", "poll", "buffered", "since")

    def __init__(self, connection):
        self.connection = connection
        self.sock = None
        self.poll = None
        self.buffered = _nothing
        self.since = 0.0

    def bind(self) -> None:
        """Watch the connection's current socket (after a (re)connect)."""
        sock = self.sock = self.connection._sock
        poller = select.poll()
        if sock is not None:
            poller.register(sock, _POLLIN)
        self.poll = poller.poll
        self.buffered = _parser_buffer_check(self.connection._parser)

    def reusable(self) -> bool:
        """Its socket is the one watched, and nothing waits unread in the socket (no
        EOF, no stray reply) nor in the parser. (Inlined in ``Channel._acquire``.)"""
        return (self.connection._sock is self.sock and not self.poll(0)
                and not self.buffered())


class Channel:
    """One server's connections, and the sync step that runs commands on them."""

    idle_timeout = 300.0  # seconds a connection may stay idle before it is closed

    def __init__(self, pool, pack_command=pack_command, pack_commands=pack_commands):
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
        self._idle: list = []
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._waiting = 0
        self._open = 0

    # -- connections ---------------------------------------------------------------

    def _acquire(self) -> _Link:
        """An idle connection that passes ``_Link.reusable``, or a new one."""
        idle = self._idle
        while True:
            try:
                link = idle.pop()
            except IndexError:
                if self._blocking and not self._reserve():
                    continue  # a connection came back while we waited: take it
                return self._new_link()
            # The hot path: ``link.reusable()``, inlined.
            if link.connection._sock is link.sock and not link.poll(0) and not link.buffered():
                return link
            self._close(link)

    def _reserve(self) -> bool:
        """Wait (blocking pools) until a connection may be opened (True) or an idle one
        is back (False); raise ``ConnectionError`` after the pool's ``timeout``."""
        with self._lock:
            if self._open < self._limit:
                self._open += 1
                return True
            self._waiting += 1
            try:
                deadline = None if self._wait_timeout is None else (
                    time.monotonic() + self._wait_timeout)
                while not self._idle and self._open >= self._limit:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise CommandNotSent("No connection available.")
                    self._returned.wait(remaining)
                if self._idle:
                    return False
                self._open += 1
                return True
            finally:
                self._waiting -= 1

    def _new_link(self) -> _Link:
        if not self._blocking:  # (a blocking pool's _reserve counted it)
            with self._lock:
                self._open += 1
        try:
            connection = self.pool.get_connection("_")
        except (ConnectionError, OSError) as error:
            self._forget_one()
            if type(error) in (ConnectionError, OSError):  # not AuthenticationError...
                raise CommandNotSent(str(error)) from error
            raise
        except BaseException:
            self._forget_one()
            raise
        link = _Link(connection)
        link.bind()
        return link

    def _forget_one(self) -> None:
        with self._lock:
            self._open -= 1
            if self._waiting:
                self._returned.notify()

    def _release(self, link: _Link) -> None:
        if link.connection._sock is not link.sock:
            link.bind()  # valkey-py reconnected it (health check)
        now = link.since = _monotonic()
        idle = self._idle
        idle.append(link)
        try:
            stale = now - idle[0].since > self.idle_timeout
        except IndexError:  # all taken meanwhile by other threads
            stale = False
        if self._waiting or stale:
            self._after_release(now, stale)

    def _after_release(self, now: float, stale: bool) -> None:
        if self._waiting:
            with self._lock:
                self._returned.notify()
        if stale:
            self._close_stale(now)

    def _close_stale(self, now: float) -> None:
        with self._lock:
            stale = []
            while self._idle and now - self._idle[0].since > self.idle_timeout:
                stale.append(self._idle.pop(0))
        for link in stale:
            if now - link.since > self.idle_timeout:
                self._close(link)
            else:  # taken and given back meanwhile: still fresh
                self._idle.append(link)

    def _close(self, link: _Link) -> None:
        try:
            link.connection.disconnect()
        finally:
            self.pool.release(link.connection)
            self._forget_one()

    # -- one round trip ---------------------------------------------------------------

    def _roundtrip(self, connection, packed: bytes, replies):
        # ``replies`` is None for one command, else the length of a pipeline.
        sock = connection._sock
        try:
            if sock is None:
                connection.connect()
                connection.send_packed_command(packed, check_health=False)
            elif connection.health_check_interval:
                connection.send_packed_command(packed)  # checks health first
            else:
                sock.sendall(packed)
        except (ConnectionError, TimeoutError, OSError) as error:
            where = connection._host_error()
            if isinstance(error, (socket.timeout, TimeoutError)):
                raise TimeoutError(f"Timeout writing to {where}") from error
            if replies is None:
                # A partial command is never run: the server has not got all of it.
                raise CommandNotSent(f"Error while writing to {where}: {error}") from error
            raise ConnectionError(f"Error while writing to {where}: {error}") from error
        parser = connection._parser
        if replies is None:
            reply = self._read(connection, parser)
            if isinstance(reply, Exception):  # error replies (ResponseError, AuthenticationError)
                raise reply
            return reply
        # A pipeline: error replies are returned in place, after all are read; an
        # error that is not about one command (authentication, read-only) is raised.
        results = [self._read(connection, parser) for _ in range(replies)]
        for result in results:
            if isinstance(result, Exception) and (
                isinstance(result, ReadOnlyError) or not isinstance(result, ResponseError)
            ):
                raise result
        return results

    @staticmethod
    def _read(connection, parser):
        """The next reply; an error reply is returned as an exception instance."""
        try:
            return parser.read_response()
        except socket.timeout:
            raise TimeoutError(f"Timeout reading from {connection._host_error()}")
        except OSError as error:
            raise ConnectionError(f"Error while reading from {connection._host_error()}: {error}")

    def _run(self, packed: bytes, replies, commands):
        """Run ``packed`` on a connection; resend it at most once, and only when the
        at-most-once rule allows (``commands`` are what ``packed`` holds)."""
        for attempt in (0, 1):
            link = self._acquire()
            try:
                result = self._roundtrip(link.connection, packed, replies)
            except ReadOnlyError:
                # A write reached a replica, which refused it: after a failover this
                # connection points at the demoted primary. Reconnect (Sentinel names
                # the new one) and retry once.
                self._close(link)
                if attempt:
                    raise
            except ResponseError:
                self._release(link)
                raise
            except (ConnectionError, TimeoutError) as error:
                self._close(link)
                if attempt or isinstance(error, TimeoutError) or not may_resend(error, commands):
                    raise
            except BaseException:
                # Interrupted (KeyboardInterrupt, a signal handler's exception...): the
                # reply may still come, so this connection is out of step.
                self._close(link)
                raise
            else:
                self._release(link)
                return result
        raise AssertionError("unreachable")

    def call(self, args):
        """Run one command (a tuple of arguments) and return its reply."""
        return self._run(self.pack_command(args), None, (args,))

    def pipeline(self, commands):
        """Run several commands in one round trip; error replies come back in place."""
        return self._run(self.pack_commands(commands), len(commands), commands)

    def disconnect(self):
        """Close the idle connections (they are reopened on next use)."""
        idle, self._idle = self._idle, []
        for link in idle:
            self._close(link)

    def idle_count(self) -> int:
        """How many connections wait idle (for tests and diagnostics)."""
        return len(self._idle)

    def open_count(self) -> int:
        """How many connections this channel holds, idle or in use."""
        return self._open
