# cython: language_level=3, boundscheck=False, wraparound=False
"""RESP on a socket, compiled implementation (twin of ``_wire_py.py``): command
packing, reading replies through a RESP reader, and the sync channel's round trip on
a pooled connection."""

import socket
import time
from select import select as _select

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL

from valkey.exceptions import ConnectionError, DataError, InvalidResponse, TimeoutError

from django_valkey_fast._common import pipeline_error
from django_valkey_fast._valkeypy import describe, ready, socket_of
from django_valkey_fast.exceptions import CommandNotSent, MalformedReply

__all__ = [
    "RECV_SIZE", "ChannelState", "Link", "acquire", "collect", "fd_readable", "pack_command",
    "pack_commands", "call", "pipeline", "read_replies", "read_reply", "release", "run", "write",
]

cdef Py_ssize_t _RECV_SIZE = 65536  # bytes asked of the socket per read
RECV_SIZE = _RECV_SIZE


cdef inline object _encode(arg):
    # The argument as bytes, or an exact str (written as its UTF-8 by _view: no bytes
    # object made for it). What valkey-py's encoder makes of each type.
    cdef Py_ssize_t size
    arg_type = type(arg)
    if arg_type is str:
        PyUnicode_AsUTF8AndSize(arg, &size)  # (an unencodable str raises here, as in
        return arg                           # the pure twin: before later arguments)
    if arg_type is bytes:
        return arg
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


cdef inline const char* _view(data, Py_ssize_t* size) except NULL:
    # The bytes of an encoded argument (an exact str's UTF-8, which CPython keeps
    # with the str: an ASCII str's own characters).
    if type(data) is bytes:
        size[0] = PyBytes_GET_SIZE(data)
        return PyBytes_AS_STRING(data)
    return PyUnicode_AsUTF8AndSize(data, size)


cdef inline Py_ssize_t _digits(Py_ssize_t n):
    cdef Py_ssize_t d = 1
    while n >= 10:
        n //= 10
        d += 1
    return d


cdef inline Py_ssize_t _write_header(char* out, char kind, Py_ssize_t n):
    # writes e.g. "$123\r\n" and returns its length
    cdef Py_ssize_t d = _digits(n), i
    out[0] = kind
    i = d
    while i > 0:
        out[i] = <char>(48 + n % 10)
        n //= 10
        i -= 1
    out[d + 1] = b'\r'
    out[d + 2] = b'\n'
    return d + 3


cdef Py_ssize_t _packed_size(list encoded) except -1:
    cdef Py_ssize_t total = 3 + _digits(len(encoded)), size
    for data in encoded:
        _view(data, &size)
        total += 3 + _digits(size) + size + 2
    return total


cdef Py_ssize_t _write(char* out, list encoded) except -1:
    cdef Py_ssize_t pos = _write_header(out, b'*', len(encoded)), size
    cdef const char* view
    for data in encoded:
        view = _view(data, &size)
        pos += _write_header(out + pos, b'$', size)
        memcpy(out + pos, view, size)
        pos += size
        out[pos] = b'\r'
        out[pos + 1] = b'\n'
        pos += 2
    return pos


def pack_command(args):
    """Return one command (an iterable of arguments) as RESP bytes."""
    cdef list encoded = [_encode(arg) for arg in args]
    cdef bytes result = PyBytes_FromStringAndSize(NULL, _packed_size(encoded))
    _write(<char*>PyBytes_AS_STRING(result), encoded)
    return result


_NO_VERB = object()


def pack_commands(commands):
    """Return several commands as one RESP buffer (a pipeline, one write)."""
    cdef list all_encoded = []
    cdef list encoded
    cdef tuple fixed
    cdef Py_ssize_t total = 0, pos = 0, i, count
    verb, verb_bytes = _NO_VERB, None
    for args in commands:
        # (indexed, no iterator made; the rare other iterable is made a tuple first)
        fixed = <tuple>args if type(args) is tuple else tuple(args)
        count = len(fixed)
        encoded = [None] * count
        if count:
            first = fixed[0]
            if first is not verb:  # (a pipeline repeats its verb object: encoded once)
                verb, verb_bytes = first, _encode(first)
            encoded[0] = verb_bytes
        for i in range(1, count):
            encoded[i] = _encode(fixed[i])
        all_encoded.append(encoded)
    for encoded in all_encoded:
        total += _packed_size(encoded)
    cdef bytes result = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = <char*>PyBytes_AS_STRING(result)
    for encoded in all_encoded:
        pos += _write(out + pos, encoded)
    return result


cpdef object read_reply(object sock, object reader):
    """The next reply on ``sock`` (an error reply as the instance ``reader`` makes)."""
    return _read(sock.recv, reader.gets, reader.feed)


cdef object _read(recv, gets, feed):
    reply = gets()
    while reply is False:
        data = recv(_RECV_SIZE)
        if not data:
            raise ConnectionResetError("Connection closed by server.")
        feed(data)
        reply = gets()
    return reply


cdef inline object _link_reply(Link link):
    # read_reply, with the methods the link bound once.
    return _read(link.recv, link.gets, link.feed)


cpdef list read_replies(object sock, object reader, Py_ssize_t count):
    """The next ``count`` replies on ``sock``, as a list."""
    cdef list replies = []
    cdef Py_ssize_t i
    for i in range(count):
        replies.append(read_reply(sock, reader))
    return replies


# -- the sync channel's round trip ------------------------------------------------

_monotonic = time.monotonic
_SOCKET_TIMEOUTS = (socket.timeout, BlockingIOError)


cdef extern from *:
    """
    #if defined(_WIN32)
    #define WIN32_LEAN_AND_MEAN
    #define NOMINMAX
    #include <windows.h>
    static double dvf_now(void) { return (double)GetTickCount64() / 1000.0; }
    static int dvf_fd_readable(long long fd) { (void)fd; return -1; }
    #else
    #include <errno.h>
    #include <time.h>
    #include <poll.h>
    static double dvf_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    static int dvf_fd_readable(long long fd) {
        /* poll(2) with no wait: the GIL need not be released, nor a list made. */
        struct pollfd entry;
        int found;
        entry.fd = (int)fd;
        entry.events = POLLIN;
        entry.revents = 0;
        do {
            found = poll(&entry, 1, 0);
        } while (found < 0 && errno == EINTR);
        return found != 0;  /* ready, hung up, or poll failed */
    }
    #endif
    """
    # A monotonic clock read without a Python call: when a link was given back
    # (``Link.since``, only ever compared with this clock's own readings).
    double _now "dvf_now" () nogil
    # Whether socket ``fd`` has something to read (bytes, EOF, an error): 1, 0, or -1
    # where this build cannot tell (Windows: ``select`` is asked instead).
    int _fd_readable "dvf_fd_readable" (long long fd) nogil


cdef class Link:
    """A pooled connection as the sync channel uses it: the socket it watches (and its
    descriptor), a poller and a reply reader for that socket, whether they hold unread
    bytes, whether the connection wants a health check before use (all set by
    ``_valkeypy.bind``), and when it was last given back."""

    cdef public object connection, sock, poll, reader, holds_data
    cdef public long long fd  # the socket's descriptor, -1 without one
    # The socket's and the reader's methods, bound once per socket (``_valkeypy.bind``)
    # rather than looked up, and a method object made, on every call.
    cdef public object recv, sendall, gets, feed
    cdef public bint checks_health
    cdef public double since

    def __init__(self, connection):
        self.connection = connection
        self.sock = None
        self.fd = -1
        self.poll = None
        self.reader = None
        self.holds_data = None
        self.recv = self.sendall = self.gets = self.feed = None
        self.checks_health = False
        self.since = 0.0


cdef class ChannelState:
    """What the round trip reads of a sync channel on every command: its idle
    connections, its pool kind, its idle policy and its RESP packers (the base of
    ``channel.Channel``; compiled, each is a C field rather than a dict lookup)."""

    cdef public list _idle
    cdef public bint _blocking
    cdef public object _wait_timeout, _lock, _returned
    cdef public Py_ssize_t _waiting
    cdef public double idle_timeout
    cdef public object pack_command, pack_commands


def fd_readable(long long fd):
    """Whether socket descriptor ``fd`` has something to read (bytes, EOF, an error;
    a closed descriptor counts), asked without waiting and without releasing the GIL;
    False for a negative one."""
    if fd > 2147483647:
        raise OverflowError(f"file descriptor {fd} out of range")
    return _poll_fd(fd)


cdef inline bint _poll_fd(long long fd) except -1:
    # fd_readable, for the reuse check too (a link without a socket has fd -1).
    if fd < 0:
        return False
    cdef int found = _fd_readable(fd)
    if found < 0:  # (Windows)
        return bool(_select([fd], [], [], 0)[0])
    return found != 0


cpdef Link acquire(ChannelState channel):
    """An idle connection of ``channel`` that passes the reuse check, or a new one."""
    cdef list idle = channel._idle
    cdef Link link
    deadline = None
    while True:
        try:
            link = idle.pop()
        except IndexError:
            link = None
        if link is None:
            if channel._blocking:
                if deadline is None and channel._wait_timeout is not None:
                    deadline = _monotonic() + channel._wait_timeout
                if not channel._reserve(deadline):
                    continue
            return channel._new_link()
        if socket_of(link.connection) is link.sock and not _poll_fd(link.fd) \
                and not link.holds_data():
            return link
        channel._close(link)


cpdef release(ChannelState channel, Link link):
    """Give ``link`` back to ``channel``'s idle connections (the most recent on top),
    and close the ones idle for more than the channel's ``idle_timeout``."""
    # (A link whose connection valkey-py closed or reconnected meanwhile is caught by
    # the next acquire's check.)
    cdef double now = _now()
    link.since = now
    cdef list idle = channel._idle
    if channel._blocking:
        with channel._lock:
            idle.append(link)
            if channel._waiting:
                channel._returned.notify()
    else:
        idle.append(link)
    try:
        stale = now - (<Link>idle[0]).since > channel.idle_timeout
    except IndexError:
        return
    if stale:
        channel._close_stale(now, channel.idle_timeout)


cpdef write(Link link, bytes packed, replies):
    """Write ``packed`` (connecting first if needed); a failure raises what it means
    for at-most-once: ``CommandNotSent`` when nothing can have run."""
    if link.checks_health or link.sock is None:
        ready(link)
    try:
        link.sendall(packed)
    except OSError as error:
        where = describe(link.connection)
        if isinstance(error, _SOCKET_TIMEOUTS):
            raise TimeoutError(f"Timeout writing to {where}") from error
        if replies is None:
            raise CommandNotSent(f"Error while writing to {where}: {error}") from error
        raise ConnectionError(f"Error while writing to {where}: {error}") from error


cpdef collect(Link link, replies):
    """Read the reply (``replies`` None) or the ``replies`` replies of a pipeline."""
    cdef Py_ssize_t i
    try:
        if replies is None:
            reply = _link_reply(link)
        else:
            results = [_link_reply(link) for i in range(<Py_ssize_t>replies)]
    except _SOCKET_TIMEOUTS:
        raise TimeoutError(f"Timeout reading from {describe(link.connection)}")
    except OSError as error:
        raise ConnectionError(
            f"Error while reading from {describe(link.connection)}: {error}")
    except (InvalidResponse, ValueError) as error:
        raise MalformedReply(
            f"Malformed reply from {describe(link.connection)}: {error}") from error
    if replies is None:
        if isinstance(reply, Exception):
            reply.replied = True  # (the server answered: never sent again, see Channel)
            raise reply
        return reply
    failed = pipeline_error(results)
    if failed is not None:
        failed.pipeline_replies = results
        failed.replied = True
        raise failed
    return results


cpdef run(ChannelState channel, bytes packed, replies, commands):
    """Run ``packed`` (``commands``, packed) on one of ``channel``'s connections and
    return the reply; after a failure the channel's ``_failed`` rule decides whether
    it is sent again (at most once more)."""
    cdef int attempt = 0
    cdef Link link
    while True:
        link = acquire(channel)
        try:
            write(link, packed, replies)
            result = collect(link, replies)
        except BaseException as error:
            channel._failed(link, error, attempt, commands)
            attempt = 1
            continue
        release(channel, link)
        return result


def call(ChannelState channel, args):
    """``Channel.call``: run one command (a tuple of arguments) and return its reply
    (a function here so that, compiled, the method call adds no Python frame)."""
    return run(channel, channel.pack_command(args), None, (args,))


def pipeline(ChannelState channel, commands):
    """``Channel.pipeline``: run several commands in one round trip; error replies
    come back in place."""
    return run(channel, channel.pack_commands(commands), len(commands), commands)
