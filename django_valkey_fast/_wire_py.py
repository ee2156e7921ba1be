"""RESP on a socket, pure-Python implementation (twin of ``_wire_c.pyx``): command
packing, reading replies through a RESP reader, and the sync channel's round trip on
a pooled connection (take one that passes the reuse check, write, read, give it back).

Arguments are encoded exactly as valkey-py encodes them (bytes as is, str as UTF-8,
int and float as their ``repr``), so the bytes on the wire are the ones valkey-py
would send. Replies are read with a reader that has libvalkey's ``Reader`` interface
(``feed``, ``gets``: libvalkey's, or ``_resp_py.Reader``); the end of the stream
raises ``ConnectionResetError``, and the socket's own errors (timeouts included)
are raised as they are by :func:`read_reply`; :func:`collect` and :func:`write` turn
them into what they mean for at-most-once (see ``channel.py``).
"""

import select
import socket
import time

from valkey.exceptions import ConnectionError, DataError, InvalidResponse, TimeoutError

from django_valkey_fast._common import pipeline_error
from django_valkey_fast._valkeypy import describe, ready, socket_of
from django_valkey_fast.exceptions import CommandNotSent, MalformedReply

__all__ = [
    "RECV_SIZE", "ChannelState", "Link", "acquire", "collect", "fd_readable", "pack_command",
    "pack_commands", "call", "pipeline", "read_replies", "read_reply", "release", "run", "write",
]

RECV_SIZE = 65536  # bytes asked of the socket per read


def _encode(arg):
    arg_type = type(arg)
    if arg_type is bytes:
        return arg
    if arg_type is str:
        return arg.encode()
    if arg_type is int or arg_type is float:
        return repr(arg).encode()
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return str(arg).encode()
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return repr(arg).encode()
    raise DataError(
        f"Invalid input of type: '{type(arg).__name__}'. "
        "Convert to a bytes, string, int or float first."
    )


def pack_command(args):
    """Return one command (an iterable of arguments) as RESP bytes."""
    if type(args) is not tuple and type(args) is not list:
        args = list(args)
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        data = _encode(arg)
        append(b"$%d\r\n" % len(data))
        append(data)
        append(b"\r\n")
    return b"".join(parts)


def pack_commands(commands):
    """Return several commands as one RESP buffer (a pipeline, one write)."""
    return b"".join([pack_command(args) for args in commands])


def read_reply(sock, reader):
    """The next reply on ``sock`` (an error reply as the instance ``reader`` makes)."""
    return _read(sock.recv, reader.gets, reader.feed)


def _read(recv, gets, feed):
    reply = gets()
    while reply is False:
        data = recv(RECV_SIZE)
        if not data:
            raise ConnectionResetError("Connection closed by server.")
        feed(data)
        reply = gets()
    return reply


def _link_reply(link):
    # read_reply, with the methods the link bound once.
    return _read(link.recv, link.gets, link.feed)


def read_replies(sock, reader, count):
    """The next ``count`` replies on ``sock``, as a list."""
    return [read_reply(sock, reader) for _ in range(count)]


# -- the sync channel's round trip ------------------------------------------------

_monotonic = time.monotonic
# What a socket raises when its timeout passes: CPython's timeout, or the kernel's
# (SO_RCVTIMEO/SO_SNDTIMEO, see _valkeypy.bind): EAGAIN on a blocking socket.
_SOCKET_TIMEOUTS = (socket.timeout, BlockingIOError)


class Link:
    """A pooled connection as the sync channel uses it: the socket it watches (and its
    descriptor), a poller and a reply reader for that socket, whether they hold unread
    bytes, whether the connection wants a health check before use (all set by
    ``_valkeypy.bind``), and when it was last given back."""

    __slots__ = ("connection", "sock", "fd", "poll", "reader", "holds_data", "recv",
                 "sendall", "gets", "feed", "checks_health", "since")

    def __init__(self, connection):
        self.connection = connection
        self.sock = None
        self.fd = -1  # the socket's descriptor (the compiled twin polls it directly)
        self.poll = None
        self.reader = None
        self.holds_data = None
        # The socket's and the reader's methods, bound once per socket (``bind``).
        self.recv = self.sendall = self.gets = self.feed = None
        self.checks_health = False
        self.since = 0.0


class ChannelState:
    """What the round trip reads of a sync channel on every command: its idle
    connections, its pool kind, its idle policy and its RESP packers (the base of
    ``channel.Channel``; compiled, each is a C field rather than a dict lookup)."""

    __slots__ = ("_idle", "_blocking", "_wait_timeout", "_lock", "_returned", "_waiting",
                 "idle_timeout", "pack_command", "pack_commands")


def fd_readable(fd):
    """Whether socket descriptor ``fd`` has something to read (bytes, EOF, an error;
    a closed descriptor counts), asked without waiting; False for a negative one."""
    if fd < 0:
        return False
    if fd > _INT_MAX:
        raise OverflowError(f"file descriptor {fd} out of range")
    if not hasattr(select, "poll"):  # (Windows)
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


_INT_MAX = 2 ** 31 - 1


def acquire(channel):
    """An idle connection of ``channel`` that passes the reuse check, or a new one.

    Reusable: its socket is the one the link watches (valkey-py did not reconnect or
    close it), and nothing waits unread in the socket (no EOF, no stray reply) nor in
    the readers.
    """
    idle = channel._idle
    deadline = None
    while True:
        try:
            link = idle.pop()
        except IndexError:
            link = None
        if link is None:  # (outside the except block: no IndexError chained to errors)
            if channel._blocking:
                if deadline is None and channel._wait_timeout is not None:
                    deadline = _monotonic() + channel._wait_timeout
                if not channel._reserve(deadline):
                    continue  # a connection came back while we waited: take it
            return channel._new_link()
        if socket_of(link.connection) is link.sock and not link.poll(0) and not link.holds_data():
            return link
        channel._close(link)


def release(channel, link):
    """Give ``link`` back to ``channel``'s idle connections (the most recent on top),
    and close the ones idle for more than the channel's ``idle_timeout``."""
    # (A link whose connection valkey-py closed or reconnected meanwhile is caught by
    # the next acquire's check.)
    now = link.since = _monotonic()
    idle = channel._idle
    if channel._blocking:
        # Append and wake under the lock, so that a waiter never misses a link
        # (free-threaded builds included).
        with channel._lock:
            idle.append(link)
            if channel._waiting:
                channel._returned.notify()
    else:
        idle.append(link)
    try:
        stale = now - idle[0].since > channel.idle_timeout
    except IndexError:  # all taken meanwhile by other threads
        return
    if stale:
        channel._close_stale(now, channel.idle_timeout)


def write(link, packed, replies):
    """Write ``packed`` (connecting first if needed); a failure raises what it means
    for at-most-once: :class:`CommandNotSent` when nothing can have run. ``replies``
    is None for one command, else the length of a pipeline."""
    if link.checks_health or link.sock is None:
        ready(link)
    try:
        link.sendall(packed)
    except OSError as error:
        where = describe(link.connection)
        if isinstance(error, _SOCKET_TIMEOUTS):
            raise TimeoutError(f"Timeout writing to {where}") from error
        if replies is None:
            # A partial command is never run: the server has not got all of it.
            raise CommandNotSent(f"Error while writing to {where}: {error}") from error
        raise ConnectionError(f"Error while writing to {where}: {error}") from error


def collect(link, replies):
    """Read the reply (``replies`` None) or the ``replies`` replies of a pipeline;
    an error reply of one command is raised, a pipeline's are returned in place
    (except those :func:`pipeline_error` picks, which are raised)."""
    try:
        if replies is None:
            reply = _link_reply(link)
        else:
            results = [_link_reply(link) for _ in range(replies)]
    except _SOCKET_TIMEOUTS:
        raise TimeoutError(f"Timeout reading from {describe(link.connection)}")
    except OSError as error:
        raise ConnectionError(
            f"Error while reading from {describe(link.connection)}: {error}")
    except (InvalidResponse, ValueError) as error:
        raise MalformedReply(
            f"Malformed reply from {describe(link.connection)}: {error}") from error
    if replies is None:
        if isinstance(reply, Exception):  # error replies (ResponseError, AuthenticationError)
            reply.replied = True  # (the server answered: never sent again, see Channel)
            raise reply
        return reply
    failed = pipeline_error(results)
    if failed is not None:
        failed.pipeline_replies = results  # for the read-only resend rule
        failed.replied = True
        raise failed
    return results


def run(channel, packed, replies, commands):
    """Run ``packed`` (``commands``, packed) on one of ``channel``'s connections and
    return the reply; after a failure the channel's ``_failed`` rule decides whether
    it is sent again (at most once more)."""
    attempt = 0
    while True:
        link = acquire(channel)
        try:
            write(link, packed, replies)
            result = collect(link, replies)
        except BaseException as error:
            channel._failed(link, error, attempt, commands)  # raises unless resending
            attempt = 1
            continue
        release(channel, link)
        return result


def call(channel, args):
    """``Channel.call``: run one command (a tuple of arguments) and return its reply
    (a function here so that, compiled, the method call adds no Python frame)."""
    return run(channel, channel.pack_command(args), None, (args,))


def pipeline(channel, commands):
    """``Channel.pipeline``: run several commands in one round trip; error replies
    come back in place."""
    return run(channel, channel.pack_commands(commands), len(commands), commands)
