"""The one module that reaches into valkey-py's (and asyncio's) private attributes.

valkey-py stays what it is good for: connection pools and connections that open,
authenticate and health-check a socket, Sentinel discovery, URL parsing, locks and
``get_client()``. Once a connection is open, the project's own wire layer writes and
reads its socket. What that needs of valkey-py's internals (the connection's socket,
its parser's error classes and read-ahead buffer, its error text) and of asyncio's
(a transport's socket, after its loop closed) is reached for here and nowhere else,
so a new valkey-py release is checked in one place: ``TESTED_VALKEY_PY`` names the
releases the test suite ran with, and pyproject.toml allows only those.

It also owns the socket mode of the sync wire path (:func:`bind`): a socket with a
Python timeout makes CPython ``poll()`` before every ``send`` and every ``recv``
(two system calls per command more than the work itself), so a plain TCP or Unix
socket gets the same timeout from the kernel instead (``SO_RCVTIMEO`` and
``SO_SNDTIMEO``) and is left in blocking mode: one ``send`` and one ``recv`` per
command, the timeout unchanged.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time
from operator import attrgetter

from valkey.exceptions import ConnectionError, InvalidResponse, TimeoutError

from django_valkey_fast.exceptions import CommandNotSent, ConnectTimeout

try:
    from libvalkey import Reader
except ImportError:  # the extra is not installed: the pure-Python reader
    from django_valkey_fast._resp_py import Reader  # type: ignore[assignment]

__all__ = [
    "KERNEL_TIMEOUTS", "Reader", "TESTED_VALKEY_PY", "abandon_transport", "abandon_valkey_pool",
    "bind", "describe", "raise_connect_failure", "ready", "side_connection", "socket_of",
]

# The valkey-py releases the test suite runs with (pyproject.toml's bounds).
TESTED_VALKEY_PY = ">=6.1,<6.3"

# The socket a sync valkey-py connection has open now (None when disconnected).
socket_of = attrgetter("_sock")

# Kernel timeouts are set where the layout of ``struct timeval`` is two C longs.
KERNEL_TIMEOUTS = (sys.platform.startswith(("linux", "darwin"))
                   and hasattr(socket, "SO_RCVTIMEO") and struct.calcsize("l") == 8)

_monotonic = time.monotonic


def describe(connection) -> str:
    """Where ``connection`` goes, as valkey-py's own error messages say it."""
    return connection._host_error()


def bind(link) -> None:
    """Point ``link`` (a ``_wire`` Link) at its connection's current socket, after a
    (re)connect: a poller to check it before reuse, a reader of its own, and whether
    the connection wants a health check before each use.

    valkey-py's parser reads the handshake (and health-check PINGs); the link's reader
    reads every reply after it. Error replies become the exceptions valkey-py's parser
    makes of them (ReadOnlyError, NoScriptError, the cluster's MovedError...). Bytes
    the parser read ahead of the handshake would be out of step with the link's
    reader: such a connection is closed (:func:`ready` checks again after a health
    check, the only other time the parser reads).
    """
    connection = link.connection
    _check_parser_drained(connection)  # (before anything of the link changes)
    sock = link.sock = connection._sock
    link.fd = sock.fileno() if sock is not None else -1
    link.poll = _readable_check(sock)
    parser = connection._parser
    reader = link.reader = Reader(protocolError=InvalidResponse, replyError=parser.parse_error)
    link.gets, link.feed = reader.gets, reader.feed
    link.recv, link.sendall = (sock.recv, sock.sendall) if sock is not None else (None, None)
    link.checks_health = bool(connection.health_check_interval)
    if hasattr(sock, "pending"):  # TLS: bytes decrypted but not read yet
        reader_holds_data = reader.has_data
        link.holds_data = lambda: reader_holds_data() or sock.pending()
    else:
        link.holds_data = reader.has_data  # (a C method: no Python frame per reuse check)
        _use_kernel_timeouts(sock)


def _check_parser_drained(connection) -> None:
    """Close ``connection`` and raise :class:`CommandNotSent` if valkey-py's parser
    holds bytes it read past the replies it was asked for (nothing is written yet)."""
    if _parser_buffer_check(connection._parser)():
        connection.disconnect()
        raise CommandNotSent(f"Unexpected bytes from {describe(connection)} "
                             "after its handshake or health check")


def _use_kernel_timeouts(sock) -> None:
    """Move a plain socket's timeout from CPython (a ``poll`` before each call) to
    the kernel; a blocked call then fails with ``BlockingIOError`` (EAGAIN), which
    the wire layer reports as a timeout."""
    if not KERNEL_TIMEOUTS or type(sock) is not socket.socket:
        return
    timeout = sock.gettimeout()
    if not timeout:  # None: already blocking with no timeout; 0: left as valkey-py set it
        return
    seconds = int(timeout)
    microseconds = min(999_999, round((timeout - seconds) * 1_000_000))
    if not seconds and not microseconds:
        microseconds = 1  # a zero timeval would mean no timeout at all
    limit = struct.pack("ll", seconds, microseconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
    sock.settimeout(None)


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


def ready(link):
    """Connect ``link``'s connection if needed and run valkey-py's health check (a
    PING when its interval has passed), all before anything of a command is written;
    return the socket to write to (the link is bound to it)."""
    connection = link.connection
    try:
        if connection._sock is None:
            connection.connect()
        elif connection.health_check_interval:
            connection.check_health()
            connection.next_health_check = _monotonic() + connection.health_check_interval
    except BaseException as error:
        connection.disconnect()
        raise_connect_failure(error)
    if connection._sock is not link.sock:
        bind(link)
    else:
        _check_parser_drained(connection)
    return link.sock


def raise_connect_failure(error: BaseException):
    """Raise what a failure to open a connection (or to check its health) means:
    nothing of the command was sent, so refused/reset is :class:`CommandNotSent` and a
    timeout :class:`ConnectTimeout`; anything more specific (AuthenticationError,
    BusyLoadingError...) is raised as valkey-py raised it."""
    if type(error) in (ConnectionError, OSError):
        raise CommandNotSent(str(error)) from error
    if type(error) in (TimeoutError, socket.timeout):
        raise ConnectTimeout(f"Timeout connecting: {error}") from error
    raise error


# -- asyncio ----------------------------------------------------------------------


def abandon_transport(transport) -> None:
    """Close a transport's socket after its event loop closed (it cannot close itself)."""
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        try:
            sock.close()
        finally:
            transport._sock = None
            transport._closing = True  # so its (and its stream's) finalizer stay quiet


def abandon_valkey_pool(pool) -> None:
    """Close the sockets of a valkey-py asyncio pool whose event loop closed."""
    connections = list(getattr(pool, "_available_connections", ()))
    connections += list(getattr(pool, "_in_use_connections", ()))
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        if writer is not None:
            abandon_transport(writer.transport)
            connection._reader = connection._writer = None


# -- the client-side cache's invalidation connection ----------------------------------


def side_connection(pool):
    """A new connected valkey-py connection to the server of ``pool`` (its connection
    class and settings: TLS, Unix socket, AUTH, database, Sentinel discovery), outside
    the pool's count, in RESP2 and without health checks (the caller PINGs on its
    own)."""
    kwargs = dict(pool.connection_kwargs)
    kwargs["health_check_interval"] = 0
    kwargs["protocol"] = 2  # (subscribed messages as replies, not RESP3 pushes)
    connection = pool.connection_class(**kwargs)
    connection.connect()
    return connection
