"""RESP on a socket, pure-Python implementation (twin of ``_wire_c.pyx``): command
packing, and reading replies through a RESP reader.

Arguments are encoded exactly as valkey-py encodes them (bytes as is, str as UTF-8,
int and float as their ``repr``), so the bytes on the wire are the ones valkey-py
would send. Replies are read with a reader that has libvalkey's ``Reader`` interface
(``feed``, ``gets``: libvalkey's, or ``_resp_py.Reader``); the end of the stream
raises ``ConnectionResetError``, and the socket's own errors (timeouts included)
are raised as they are.
"""

from valkey.exceptions import DataError

__all__ = ["RECV_SIZE", "pack_command", "pack_commands", "read_replies", "read_reply"]

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
    reply = reader.gets()
    while reply is False:
        data = sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionResetError("Connection closed by server.")
        reader.feed(data)
        reply = reader.gets()
    return reply


def read_replies(sock, reader, count):
    """The next ``count`` replies on ``sock``, as a list."""
    return [read_reply(sock, reader) for _ in range(count)]
