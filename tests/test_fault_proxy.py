"""Self-tests of tests/fault_proxy.py: each fault does exactly what it says, against a
real server, talking RESP over plain sockets."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.fault_proxy import FaultProxy
from tests.servers import Server

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"


def resp(*args: str | bytes) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def connect(proxy: FaultProxy, timeout: float = 3.0) -> socket.socket:
    """A plain client socket connected to the proxy."""
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes (fails on EOF or on the socket's timeout)."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes: {bytes(data)!r}"
        data += chunk
    return bytes(data)


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything until EOF (a reset counts as EOF); fails on the socket's timeout."""
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data)


def wait_until(predicate, timeout: float = 3.0) -> bool:
    """Poll ``predicate`` until it is true; False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def server_clients(target: Server) -> int:
    """Clients connected to the server, not counting the one asking."""
    info = target.command("INFO clients")[0]
    line = next(l for l in info.splitlines() if l.startswith("connected_clients:"))
    return int(line.split(":")[1]) - 1


@pytest.fixture(scope="module")
def target():
    """A real standalone server behind the proxy."""
    process = Server()
    yield process
    process.stop()


@pytest.fixture
def proxy(target):
    """A fresh proxy in front of ``target``, with the server's data flushed first."""
    target.command("FLUSHALL")
    with FaultProxy(target.port) as fault_proxy:
        yield fault_proxy


def test_forwards_requests_and_replies(proxy):
    """Without faults the proxy is transparent, pipelined commands included."""
    assert proxy.url == f"valkey://127.0.0.1:{proxy.port}/0"
    with connect(proxy) as sock:
        sock.sendall(PING)
        assert read_exactly(sock, len(PONG)) == PONG
        sock.sendall(resp("INCR", "k") * 3)
        assert read_exactly(sock, 12) == b":1\r\n:2\r\n:3\r\n"


def test_large_transfer_is_intact(proxy):
    """Multi-megabyte requests and replies cross the proxy byte for byte."""
    value = bytes(range(256)) * (4 * 4096)  # 4 MiB
    with connect(proxy, timeout=10) as sock:
        sock.sendall(resp("SET", "big", value) + resp("GET", "big"))
        assert read_exactly(sock, 5) == b"+OK\r\n"
        header = b"$%d\r\n" % len(value)
        assert read_exactly(sock, len(header) + len(value) + 2) == header + value + b"\r\n"


def test_drop_next_reply(proxy, target):
    """drop: the server runs the command, the client gets EOF and no reply, and the
    server side of that connection is closed too."""
    with connect(proxy) as sock:
        sock.sendall(PING)
        assert read_exactly(sock, len(PONG)) == PONG
        proxy.drop_next_reply()
        sock.sendall(resp("INCR", "k"))
        assert read_to_eof(sock) == b""
    assert proxy.wait_armed_fault_used()
    assert target.command("GET k") == ["1"]
    assert wait_until(lambda: proxy.connections == 0)
    assert wait_until(lambda: server_clients(target) == 0)


def test_cut_next_reply(proxy, target):
    """cut: the client gets exactly the first ``keep`` bytes of the reply, then EOF."""
    target.command("SET k " + "v" * 100)
    reply = b"$100\r\n" + b"v" * 100 + b"\r\n"
    with connect(proxy) as sock:
        proxy.cut_next_reply(10)
        sock.sendall(resp("GET", "k"))
        assert read_to_eof(sock) == reply[:10]
    assert proxy.wait_armed_fault_used()
    assert wait_until(lambda: proxy.connections == 0)
    assert wait_until(lambda: server_clients(target) == 0)


def test_duplicate_next_reply_then_disarms(proxy, target):
    """duplicate: the reply arrives twice though the command ran once; the next reply
    is forwarded normally (one-shot)."""
    with connect(proxy) as sock:
        proxy.duplicate_next_reply()
        sock.sendall(resp("INCR", "k"))
        assert read_exactly(sock, 8) == b":1\r\n:1\r\n"
        assert proxy.wait_armed_fault_used()
        sock.sendall(PING)
        assert read_exactly(sock, len(PONG)) == PONG
        sock.settimeout(0.1)
        with pytest.raises(socket.timeout):
            sock.recv(1)
    assert target.command("GET k") == ["1"]


def test_one_shot_fault_hits_whichever_connection_replies_next(proxy):
    """A one-shot fault applies to the next reply on any connection, then disarms:
    the other connection keeps working."""
    with connect(proxy) as first, connect(proxy) as second:
        first.sendall(PING)
        assert read_exactly(first, len(PONG)) == PONG
        proxy.drop_next_reply()
        assert not proxy.wait_armed_fault_used(timeout=0.05)
        second.sendall(PING)
        assert read_to_eof(second) == b""
        assert proxy.wait_armed_fault_used()
        first.sendall(PING)
        assert read_exactly(first, len(PONG)) == PONG
        assert proxy.connections == 1


def test_delay_replies(proxy):
    """delay: each reply is held at least the delay (and not much longer); 0 turns it off."""
    with connect(proxy) as sock:
        proxy.delay_replies(0.4)
        started = time.monotonic()
        sock.sendall(PING)
        assert read_exactly(sock, len(PONG)) == PONG
        assert 0.4 <= time.monotonic() - started < 2.0
        proxy.delay_replies(0)
        started = time.monotonic()
        sock.sendall(PING)
        assert read_exactly(sock, len(PONG)) == PONG
        assert time.monotonic() - started < 0.4


def test_blackhole_holds_then_releases(proxy, target):
    """blackhole: nothing flows either way (the command does not even reach the server),
    new connections are accepted but get nothing; turned off, everything held flows."""
    with connect(proxy) as sock:
        sock.sendall(PING)
        assert read_exactly(sock, len(PONG)) == PONG
        proxy.blackhole()
        sock.sendall(resp("INCR", "k"))
        with connect(proxy) as late:
            assert wait_until(lambda: proxy.accepted == 2)
            late.sendall(PING)
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(1)
            late.settimeout(0.05)
            with pytest.raises(socket.timeout):
                late.recv(1)
            assert target.command("GET k") == [""]
            proxy.blackhole(False)
            sock.settimeout(3)
            late.settimeout(3)
            assert read_exactly(sock, 4) == b":1\r\n"
            assert read_exactly(late, len(PONG)) == PONG
    assert target.command("GET k") == ["1"]


def test_cut_all(proxy, target):
    """cut_all: every open connection gets EOF at once, server sides are closed, and new
    connections still work."""
    sockets = [connect(proxy) for _ in range(3)]
    try:
        assert wait_until(lambda: proxy.connections == 3)
        proxy.cut_all()
        assert proxy.connections == 0
        for sock in sockets:
            sock.settimeout(1)
            assert read_to_eof(sock) == b""
    finally:
        for sock in sockets:
            sock.close()
    assert wait_until(lambda: server_clients(target) == 0)
    with connect(proxy) as sock:
        sock.sendall(PING)
        assert read_exactly(sock, len(PONG)) == PONG


def test_connection_counts(proxy):
    """accepted counts every connection ever accepted; connections counts the open ones
    and drops when a client hangs up."""
    assert (proxy.accepted, proxy.connections) == (0, 0)
    first, second = connect(proxy), connect(proxy)
    try:
        assert wait_until(lambda: proxy.connections == 2)
        assert proxy.accepted == 2
        first.close()
        assert wait_until(lambda: proxy.connections == 1)
    finally:
        first.close()
        second.close()
    assert wait_until(lambda: proxy.connections == 0)
    with connect(proxy):
        assert wait_until(lambda: proxy.accepted == 3 and proxy.connections == 1)


def test_idle_proxy_does_not_spin(proxy):
    """Open, blackholed and delayed connections cost no CPU while nothing happens."""
    with connect(proxy) as held, connect(proxy) as delayed:
        assert wait_until(lambda: proxy.connections == 2)
        proxy.delay_replies(5)
        delayed.sendall(PING)
        proxy.blackhole()
        held.sendall(PING)
        cpu = time.process_time()
        time.sleep(0.3)  # measuring idle cost, not waiting for a condition
        assert time.process_time() - cpu < 0.1


def test_stop_cleans_up(target):
    """stop: returns within a second even with data held, joins every thread, closes
    every socket (clients see EOF, the port refuses), and is idempotent."""
    threads_before = set(threading.enumerate())  # (others may end meanwhile: count ours)
    proxy = FaultProxy(target.port)
    clients = [connect(proxy) for _ in range(3)]
    try:
        assert wait_until(lambda: proxy.connections == 3)
        started_threads = set(threading.enumerate()) - threads_before
        assert len(started_threads) == 1 + 2 * 3
        proxy.delay_replies(30)
        clients[0].sendall(PING)
        proxy.blackhole()
        clients[1].sendall(PING)
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 3  # (its budget is 1 s; a loaded machine)
        assert wait_until(lambda: not any(thread.is_alive() for thread in started_threads))
        for sock in clients:
            sock.settimeout(1)
            assert read_to_eof(sock) == b""
    finally:
        for sock in clients:
            sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    proxy.stop()
    assert wait_until(lambda: server_clients(target) == 0)
