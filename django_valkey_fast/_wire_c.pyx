# cython: language_level=3, boundscheck=False, wraparound=False
"""RESP on a socket, compiled implementation (twin of ``_wire_py.py``): command
packing, and reading replies through a RESP reader."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from valkey.exceptions import DataError

__all__ = ["RECV_SIZE", "pack_command", "pack_commands", "read_replies", "read_reply"]

cdef Py_ssize_t _RECV_SIZE = 65536  # bytes asked of the socket per read
RECV_SIZE = _RECV_SIZE


cdef inline bytes _encode(arg):
    arg_type = type(arg)
    if arg_type is bytes:
        return <bytes>arg
    if arg_type is str:
        return (<str>arg).encode("utf-8")
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


cdef Py_ssize_t _packed_size(list encoded):
    cdef Py_ssize_t total = 3 + _digits(len(encoded)), size
    for data in encoded:
        size = PyBytes_GET_SIZE(data)
        total += 3 + _digits(size) + size + 2
    return total


cdef Py_ssize_t _write(char* out, list encoded):
    cdef Py_ssize_t pos = _write_header(out, b'*', len(encoded)), size
    for data in encoded:
        size = PyBytes_GET_SIZE(data)
        pos += _write_header(out + pos, b'$', size)
        memcpy(out + pos, PyBytes_AS_STRING(data), size)
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


def pack_commands(commands):
    """Return several commands as one RESP buffer (a pipeline, one write)."""
    cdef list all_encoded = [[_encode(arg) for arg in args] for args in commands]
    cdef Py_ssize_t total = 0, pos = 0
    cdef list encoded
    for encoded in all_encoded:
        total += _packed_size(encoded)
    cdef bytes result = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = <char*>PyBytes_AS_STRING(result)
    for encoded in all_encoded:
        pos += _write(out + pos, encoded)
    return result


cpdef object read_reply(object sock, object reader):
    """The next reply on ``sock`` (an error reply as the instance ``reader`` makes)."""
    gets = reader.gets
    reply = gets()
    if reply is not False:
        return reply
    recv = sock.recv
    feed = reader.feed
    while reply is False:
        data = recv(_RECV_SIZE)
        if not data:
            raise ConnectionResetError("Connection closed by server.")
        feed(data)
        reply = gets()
    return reply


cpdef list read_replies(object sock, object reader, Py_ssize_t count):
    """The next ``count`` replies on ``sock``, as a list."""
    cdef list replies = []
    cdef Py_ssize_t i
    for i in range(count):
        replies.append(read_reply(sock, reader))
    return replies
