"""A server that answers with bytes that are not RESP (a hostile server, a broken proxy,
a stream out of step): every read path reports it as a protocol error on a closed
connection, never a bare ValueError/RecursionError and never a value.

Invariant protected: a malformed reply is a ``MalformedReply`` (a valkey-py
``ConnectionError`` and ``InvalidResponse``), reported as ``ConnectionInterrupted`` and
swallowed by ``IGNORE_EXCEPTIONS`` like any broken connection, on the sync path (both
valkey-py parsers) and the asyncio path (libvalkey's reader and the pure one); the
connection that received it is not used again."""

from __future__ import annotations

import socket
import threading

import pytest
from valkey.exceptions import InvalidResponse

from django_valkey_fast._resp_py import Reader
from django_valkey_fast import async_channel as aio
from django_valkey_fast.cache import ValkeyCache
from django_valkey_fast.exceptions import ConnectionInterrupted, MalformedReply

HANDSHAKE = {b"CLIENT", b"HELLO", b"SELECT", b"AUTH", b"PING", b"READONLY"}

MALFORMED = [
    b"$abc\r\n", b"$-5\r\n", b"$1_0\r\n", b"$ 5\r\nhello\r\n", b"+a\rb\r\n", b"?\r\n",
    b"*1\r\n" * 5000 + b"$1\r\nx\r\n",
]


class HostileServer:
    """Answers the connection handshake with +OK and every other command with
    ``reply``; counts connections."""

    def __init__(self, reply: bytes):
        self.reply = reply
        self.connections = 0
        self.commands: list = []  # every command but the handshake, as received
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"valkey://127.0.0.1:{self.port}/0"

    def _accept(self):
        while not self._stopped:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        reader = Reader()
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                reader.feed(data)
                while (command := reader.gets()) is not False:
                    name = command[0].upper()
                    if name not in HANDSHAKE:
                        self.commands.append(command)
                    conn.sendall(b"+OK\r\n" if name in HANDSHAKE else self.reply)

    def close(self):
        self._stopped = True
        self._listener.close()


@pytest.fixture
def hostile():
    servers = []

    def start(reply):
        server = HostileServer(reply)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def build(server, **options):
    options.setdefault("SOCKET_TIMEOUT", 5)
    return ValkeyCache(server.url, {"OPTIONS": options})


# The sync path reads with valkey-py's parser: libvalkey's (the default when the
# libvalkey extra is installed) refuses all of MALFORMED; valkey-py's pure RESP2 parser
# (without the extra) is more lenient (it reads "$ 5" as a length and waits out a
# negative one) and only the replies it refuses are checked with it.
SYNC_CASES = [(reply, "valkey._parsers.libvalkey._LibvalkeyParser") for reply in MALFORMED] + [
    (reply, "valkey._parsers.resp2._RESP2Parser") for reply in (b"$abc\r\n", b"?\r\n")]


@pytest.mark.parametrize("reply, parser", SYNC_CASES, ids=lambda r: repr(r[-12:]))
def test_sync_malformed_reply_is_a_protocol_error(hostile, reply, parser):
    server = hostile(reply)
    cache = build(server, PARSER_CLASS=parser)
    with pytest.raises(ConnectionInterrupted) as caught:
        cache.get("k")
    assert isinstance(caught.value, MalformedReply)
    assert isinstance(caught.value, InvalidResponse)
    assert "Malformed reply" in str(caught.value)
    # The connection that read it is closed, not returned to the pool.
    channel = cache.client._channel(True)
    assert channel.open_count() == 0


@pytest.mark.parametrize("reply", MALFORMED[:3], ids=lambda r: repr(r[:12]))
def test_sync_malformed_reply_is_ignored_like_a_broken_connection(hostile, reply):
    cache = build(hostile(reply), IGNORE_EXCEPTIONS=True)
    assert cache.get("k", "default") == "default"


@pytest.fixture(params=["libvalkey", "pure"])
def async_reader(request, monkeypatch):
    if request.param == "pure":
        monkeypatch.setattr(aio, "Reader", Reader)
    return request.param


@pytest.mark.parametrize("reply", MALFORMED, ids=lambda r: repr(r[:12]))
async def test_async_malformed_reply_is_a_protocol_error(hostile, reply, async_reader):
    server = hostile(reply)
    cache = build(server)
    with pytest.raises(ConnectionInterrupted) as caught:
        await cache.aget("k")
    assert isinstance(caught.value, MalformedReply)
    assert "Malformed reply" in str(caught.value)
    connection = cache.client._achannel(True)._connection
    assert connection is None or connection.closed
    # A read is sent again once on a new connection (reads may be), then reported.
    assert server.connections <= 2
    ignoring = build(server, IGNORE_EXCEPTIONS=True)
    assert await ignoring.aget("k", "default") == "default"


async def test_async_malformed_reply_inside_a_pipeline(hostile, async_reader):
    """A set_many whose replies are not RESP: the caller gets the protocol error (a
    write is not sent again: its reply never came)."""
    server = hostile(b"$-5\r\n")
    cache = build(server)
    with pytest.raises(MalformedReply):
        await cache.aset_many({"a": 1, "b": 2})
    assert server.connections == 1


@pytest.mark.parametrize("reply", [b"-LOADING Valkey is loading the dataset in memory\r\n",
                                   b"-NOAUTH Authentication required.\r\n"])
async def test_an_error_reply_parsed_as_a_connection_error_is_raised_not_resent(
        hostile, reply):
    """Invariant: an error REPLY is the server's answer, raised once, even when valkey-py
    makes it a ConnectionError subclass (LOADING, NOAUTH): only an error raised by the
    connection (no reply) may be resent. Sync and async, on one connection each."""
    from valkey.exceptions import ConnectionError

    server = hostile(reply)
    cache = build(server)
    with pytest.raises(ConnectionInterrupted) as caught:
        await cache.aget("k")
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert [command[0].upper() for command in server.commands] == [b"GET"]
    assert server.connections == 1
    with pytest.raises(ConnectionInterrupted) as caught:
        cache.get("k")
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert [command[0].upper() for command in server.commands] == [b"GET", b"GET"]
    with pytest.raises(ConnectionInterrupted):
        cache.get_many(["a", "b"])  # a pipeline's too (a one-key MGET here: one command)
    assert len(server.commands) == 3 and server.connections == 2  # (one sync, one async)
