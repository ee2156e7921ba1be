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
  closed when the next connection is given back to the channel, so a burst does not
  keep its connections open forever.

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
from valkey.exceptions import (
    ConnectionError, InvalidResponse, ReadOnlyError, ResponseError, TimeoutError,
)

from django_valkey_fast._wire import pack_command, pack_commands, read_replies, read_reply
from django_valkey_fast.exceptions import CommandNotSent, ConnectTimeout, MalformedReply
from django_valkey_fast.retry import may_resend, refused_everywhere

try:
    from libvalkey import Reader
except ImportError:  # the extra is not installed: the pure-Python reader
    from django_valkey_fast._resp_py import Reader  # type: ignore[assignment]

__all__ = ["Channel", "SentPipeline", "channel_for", "channel_for_pool", "pipeline_error"]

_channels: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_channels_lock = threading.Lock()

_monotonic = time.monotonic


def channel_for(client) -> "Channel":
    """Return the process-wide channel of a valkey-py client's connection pool."""
    return channel_for_pool(client.connection_pool)


def channel_for_pool(pool) -> "Channel":
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


def _raise_connect_failure(error: BaseException):
    """Raise what a failure to open a connection (or to check its health) means:
    nothing of the command was sent, so refused/reset is :class:`CommandNotSent` and a
    timeout :class:`ConnectTimeout`; anything more specific (AuthenticationError,
    BusyLoadingError...) is raised as valkey-py raised it."""
    if type(error) in (ConnectionError, OSError):
        raise CommandNotSent(str(error)) from error
    if type(error) in (TimeoutError, socket.timeout):
        raise ConnectTimeout(f"Timeout connecting: {error}") from error
    raise error


def pipeline_error(replies):
    """The reply of a pipeline that is raised rather than returned in place: an error
    that is not about one command (authentication...) or a READONLY refusal; or None."""
    for reply in replies:
        if isinstance(reply, Exception) and (
            isinstance(reply, ReadOnlyError) or not isinstance(reply, ResponseError)
        ):
            return reply
    return None


class _Link:
    """A connection with its reply reader, and what the channel needs to check it
    cheaply before reuse."""

    __slots__ = ("connection", "sock", "poll", "buffered", "since", "reader")

    def __init__(self, connection):
        self.connection = connection
        self.sock = None
        self.poll = None
        self.buffered = _nothing
        self.since = 0.0
        self.reader = None

    def bind(self) -> None:
        """Watch the connection's current socket (after a (re)connect), with a new
        reader: valkey-py's parser reads the handshake (and health-check PINGs, when
        nothing is pending), the channel's reader reads every reply after it."""
        connection = self.connection
        sock = self.sock = connection._sock
        self.poll = _readable_check(sock)
        # Error replies become the exceptions valkey-py's parser would make of them
        # (ReadOnlyError, NoScriptError, the cluster's MovedError/AskError...).
        reader = self.reader = Reader(protocolError=InvalidResponse,
                                      replyError=connection._parser.parse_error)
        parser_holds_data = _parser_buffer_check(connection._parser)
        reader_holds_data = reader.has_data
        if hasattr(sock, "pending"):  # TLS: bytes decrypted but not read yet
            self.buffered = lambda: (reader_holds_data() or parser_holds_data()
                                     or sock.pending())
        else:
            self.buffered = lambda: reader_holds_data() or parser_holds_data()


def _readable_check(sock):
    """``check(0)``: whether ``sock`` has something to read (bytes, EOF, an error)."""
    if sock is None:
        return _nothing_ready
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return poller.poll
    return lambda timeout: select.select([sock], [], [], timeout)[0]  # no poll (Windows)


def _nothing_ready(timeout):
    return []


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
        # ``_idle`` is only ever changed in place (pop, append, remove): threads keep a
        # reference to it across waits.
        self._idle: list = []
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._waiting = 0
        self._open = 0

    # -- connections ---------------------------------------------------------------

    def _acquire(self) -> _Link:
        """An idle connection that passes the reuse check, or a new one."""
        idle = self._idle
        deadline = None
        while True:
            try:
                link = idle.pop()
            except IndexError:
                link = None
            if link is None:  # (outside the except block: no IndexError chained to errors)
                if self._blocking:
                    if deadline is None and self._wait_timeout is not None:
                        deadline = _monotonic() + self._wait_timeout
                    if not self._reserve(deadline):
                        continue  # a connection came back while we waited: take it
                return self._new_link()
            # Reusable: its socket is the one watched, and nothing waits unread in the
            # socket (no EOF, no stray reply) nor in the parser.
            if link.connection._sock is link.sock and not link.poll(0) and not link.buffered():
                return link
            self._close(link)

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

    def _new_link(self) -> _Link:
        if not self._blocking:  # (a blocking pool's _reserve counted it)
            with self._lock:
                self._open += 1
        try:
            connection = self.pool.get_connection("_")
        except BaseException as error:
            self._forget_one()
            _raise_connect_failure(error)
        link = _Link(connection)
        try:
            link.bind()
        except BaseException:
            self._close(link)
            raise
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
        if self._blocking:
            # Append and wake under the lock, so that a waiter never misses a link
            # (free-threaded builds included).
            with self._lock:
                idle.append(link)
                if self._waiting:
                    self._returned.notify()
        else:
            idle.append(link)
        try:
            stale = now - idle[0].since > self.idle_timeout
        except IndexError:  # all taken meanwhile by other threads
            return
        if stale:
            self._close_stale(now)

    def _close_stale(self, now: float) -> None:
        """Close the connections idle for more than ``idle_timeout`` (the oldest are
        at the bottom of the LIFO)."""
        stale = []
        with self._lock:
            idle = self._idle
            while idle:
                oldest = idle[0]
                if now - oldest.since <= self.idle_timeout:
                    break
                try:
                    idle.remove(oldest)
                except ValueError:  # taken by another thread meanwhile
                    continue
                if now - oldest.since > self.idle_timeout:
                    stale.append(oldest)
                else:  # taken and given back meanwhile: still fresh
                    idle.append(oldest)
                    if self._waiting:
                        self._returned.notify()
        for link in stale:
            self._close(link)

    def _close(self, link: _Link) -> None:
        try:
            link.connection.disconnect()
        finally:
            self.pool.release(link.connection)
            self._forget_one()

    # -- one round trip ---------------------------------------------------------------

    def _roundtrip(self, link: _Link, packed: bytes, replies):
        # ``replies`` is None for one command, else the length of a pipeline.
        self._write(link, packed, replies)
        return self._collect(link, replies)

    def _write(self, link: _Link, packed: bytes, replies) -> None:
        """Write ``packed`` (connecting first if needed); a failure raises what it means
        for at-most-once: :class:`CommandNotSent` when nothing can have run."""
        connection = link.connection
        sock = connection._sock
        if sock is None or connection.health_check_interval:
            sock = self._ready(connection)
            if sock is not link.sock:
                link.bind()
        try:
            sock.sendall(packed)
        except (ConnectionError, TimeoutError, OSError) as error:
            where = connection._host_error()
            if isinstance(error, (socket.timeout, TimeoutError)):
                raise TimeoutError(f"Timeout writing to {where}") from error
            if replies is None:
                # A partial command is never run: the server has not got all of it.
                raise CommandNotSent(f"Error while writing to {where}: {error}") from error
            raise ConnectionError(f"Error while writing to {where}: {error}") from error

    def _collect(self, link: _Link, replies):
        """Read the reply (``replies`` None) or the ``replies`` replies of a pipeline."""
        try:
            if replies is None:
                reply = read_reply(link.sock, link.reader)
            else:
                results = read_replies(link.sock, link.reader, replies)
        except socket.timeout:
            raise TimeoutError(f"Timeout reading from {link.connection._host_error()}")
        except OSError as error:
            raise ConnectionError(
                f"Error while reading from {link.connection._host_error()}: {error}")
        except (InvalidResponse, ValueError) as error:
            raise MalformedReply(
                f"Malformed reply from {link.connection._host_error()}: {error}") from error
        if replies is None:
            if isinstance(reply, Exception):  # error replies (ResponseError, AuthenticationError)
                raise reply
            return reply
        # A pipeline: error replies are returned in place, after all are read; an
        # error that is not about one command (authentication, read-only) is raised.
        failed = pipeline_error(results)
        if failed is not None:
            failed.pipeline_replies = results  # for the read-only resend rule
            raise failed
        return results

    @staticmethod
    def _ready(connection):
        """Connect (if needed) and run valkey-py's health check (if configured): all
        before anything of the command is written."""
        try:
            if connection._sock is None:
                connection.connect()
            elif connection.health_check_interval:
                connection.check_health()  # a PING if the interval has passed
                connection.next_health_check = _monotonic() + connection.health_check_interval
        except BaseException as error:
            connection.disconnect()
            _raise_connect_failure(error)
        return connection._sock

    def _run(self, packed: bytes, replies, commands):
        """Run ``packed`` on a connection; resend it at most once, and only when the
        at-most-once rule allows (``commands`` are what ``packed`` holds)."""
        for attempt in (0, 1):
            link = self._acquire()
            try:
                result = self._roundtrip(link, packed, replies)
            except ReadOnlyError as error:
                # A write reached a replica, which refused it: after a failover this
                # connection points at the demoted primary, and so may the idle ones.
                # Reconnect (Sentinel names the new primary) and retry once, if no
                # write of a pipeline ran before the refusal.
                self._close(link)
                self.disconnect()
                refused = getattr(error, "pipeline_replies", None)
                if attempt or (refused is not None and not refused_everywhere(commands, refused)):
                    raise
            except ResponseError:
                self._release(link)
                raise
            except (ConnectionError, TimeoutError) as error:
                self._close(link)
                # A timeout is not waited out twice here, even one that sent nothing.
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

    # -- a pipeline in two halves: write to several servers before reading any --------

    def send_pipeline(self, commands) -> "SentPipeline":
        """Write a pipeline and return it, to read with :meth:`receive_pipeline`:
        the first half of :meth:`pipeline`, so that a caller (the Cluster driver) writes
        to every server before it waits for any. A connection that turns out closed
        before anything was written is replaced once, as :meth:`pipeline` does; every
        other failure is raised for the caller's own resend rule."""
        packed = self.pack_commands(commands)
        for attempt in (0, 1):
            link = self._acquire()
            try:
                self._write(link, packed, len(commands))
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
            results = self._collect(link, sent.replies)
        except ResponseError as error:
            if isinstance(error, ReadOnlyError):  # a demoted primary: reconnect next time
                self._close(link)
                self.disconnect()
            else:
                self._release(link)
            raise
        except BaseException:
            self._close(link)  # out of step: its replies may still come
            raise
        self._release(link)
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

    def __init__(self, channel: Channel, link: _Link, replies: int):
        self.channel = channel
        self.link: _Link | None = link
        self.replies = replies

    def abandon(self) -> None:
        """Close its connection unread (the caller gave up: its replies may still come)."""
        link, self.link = self.link, None
        if link is not None:
            self.channel._close(link)
