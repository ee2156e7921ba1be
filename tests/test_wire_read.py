"""Reading replies off a socket (``_wire.read_reply``/``read_replies``), both twins.

A real socket pair stands in for the server: the bytes arrive in whatever chunks the
test writes, and each twin must give the same replies, the same errors, and leave
the bytes of the next reply in the reader."""

import socket
import threading

import pytest
from valkey._parsers.base import BaseParser
from valkey.exceptions import InvalidResponse, ReadOnlyError, ResponseError

from django_valkey_fast._resp_py import Reader


def reader():
    return Reader(protocolError=InvalidResponse, replyError=BaseParser().parse_error)


def feed_in_chunks(sock, data: bytes, size: int, then_close: bool = False):
    def run():
        for start in range(0, len(data), size):
            sock.sendall(data[start:start + size])
        if then_close:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("chunk", [1, 3, 7, 65536])
def test_replies_however_the_bytes_are_split(impl, chunk):
    ours, server = socket.socketpair()
    with ours, server:
        replies = (b"$5\r\nhello\r\n" + b":42\r\n" + b"*2\r\n$1\r\na\r\n$-1\r\n"
                   + b"-READONLY You can't write against a read only replica.\r\n"
                   + b"-ERR unknown\r\n+OK\r\n")
        thread = feed_in_chunks(server, replies, chunk)
        stream = reader()
        assert impl.wire.read_reply(ours, stream) == b"hello"
        rest = impl.wire.read_replies(ours, stream, 5)
        thread.join()
        assert rest[:2] == [42, [b"a", None]]
        assert type(rest[2]) is ReadOnlyError and type(rest[3]) is ResponseError
        assert rest[4] == b"OK"
        assert not stream.has_data()


def test_a_reply_already_read_ahead_needs_no_recv(impl):
    ours, server = socket.socketpair()
    with ours, server:
        server.sendall(b":1\r\n:2\r\n")
        stream = reader()
        assert impl.wire.read_reply(ours, stream) == 1
        ours.settimeout(0.01)  # a recv now would time out: the reply is in the reader
        assert impl.wire.read_reply(ours, stream) == 2


def test_the_end_of_the_stream_mid_reply_is_a_reset(impl):
    ours, server = socket.socketpair()
    with ours, server:
        feed_in_chunks(server, b"$10\r\nhal", 4, then_close=True).join()
        with pytest.raises(ConnectionResetError, match="closed by server"):
            impl.wire.read_reply(ours, reader())


def test_socket_errors_are_raised_as_they_are(impl):
    ours, server = socket.socketpair()
    with ours, server:
        ours.settimeout(0.01)
        with pytest.raises(socket.timeout):
            impl.wire.read_replies(ours, reader(), 1)


def test_a_protocol_error_is_raised_by_the_reader(impl):
    ours, server = socket.socketpair()
    with ours, server:
        server.sendall(b"!not resp\r\n")
        with pytest.raises(InvalidResponse):
            impl.wire.read_reply(ours, reader())
