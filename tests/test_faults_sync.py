"""Fault suite, sync path: real servers killed, paused, restarted; replies dropped, cut
and duplicated by a proxy of the suite's own; CLIENT KILL storms; pool limits.

Each test names the invariant it protects in its docstring:
- AT-MOST-ONCE: a write is never applied twice; a lost reply to a write raises.
- OWN-REPLY: a caller only ever gets the reply to its own command.
- BOUNDED: no call waits longer than its timeout (generous bounds: shared machines).
- RECOVERY: after the fault ends, calls succeed again without restarting anything.
- POOL: max_connections and blocking semantics hold; idle connections are not kept forever.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import pytest
import valkey
from valkey.exceptions import ConnectionError as ValkeyConnectionError

from django_valkey_fast.channel import IDLE_TIMEOUT, channel_of
from django_valkey_fast.exceptions import ConnectionInterrupted
from tests.fault_proxy import FaultProxy
from tests.servers import Server


@pytest.fixture
def own_server():
    """A server of this test's own, free to be killed, paused and restarted."""
    process = Server()
    yield process
    process.stop()


@pytest.fixture
def proxy(server):
    """A fault proxy in front of the session's server."""
    with FaultProxy(server.port) as fault_proxy:
        yield fault_proxy


def _channel(cache):
    return channel_of(cache.client.get_client())


def _wait_until(condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# -- AT-MOST-ONCE ---------------------------------------------------------------------


def test_lost_reply_to_a_write_raises_and_the_write_ran_once(make_cache, server, proxy):
    """AT-MOST-ONCE: INCR whose reply is lost on a reused connection raises
    ConnectionInterrupted; the server applied it exactly once (it is not re-sent)."""
    cache = make_cache(LOCATION=proxy.url, OPTIONS={"SOCKET_TIMEOUT": 5})
    cache.set("n", 0)
    assert cache.incr("n") == 1  # the script is loaded; the connection idle, reused next
    proxy.drop_next_reply()
    with pytest.raises(ConnectionInterrupted):
        cache.incr("n")
    assert proxy.wait_armed_fault_used()
    assert server.command("GET :1:n")[0] == "2"
    assert cache.incr("n") == 3  # and the cache goes on, on a new connection


def test_lost_reply_to_add_is_not_reported_as_a_failed_add(make_cache, server, proxy):
    """AT-MOST-ONCE: a lost reply to ``add`` raises instead of re-sending SET NX, which
    would answer False for the value it just stored."""
    cache = make_cache(LOCATION=proxy.url)
    cache.set("warm", 1)
    proxy.drop_next_reply()
    with pytest.raises(ConnectionInterrupted):
        cache.add("a", "first")
    assert cache.get("a") == "first"


def test_lost_reply_under_ignore_exceptions_returns_the_default(make_cache, proxy):
    """AT-MOST-ONCE: with IGNORE_EXCEPTIONS a lost write reply gives the operation's
    default answer, never a second application."""
    cache = make_cache(LOCATION=proxy.url, OPTIONS={"IGNORE_EXCEPTIONS": True})
    cache.set("n", 10)
    proxy.drop_next_reply()
    assert cache.set("n", 11) is False  # the fallback; the server may hold 11
    assert cache.incr("n") in (11, 12)
    assert cache.get("n") in (11, 12)


def test_lost_reply_to_a_read_is_read_again(make_cache, proxy):
    """RECOVERY: a read whose reply is lost is sent once more on a new connection
    (reading twice gives the same answer), so the caller sees no error."""
    cache = make_cache(LOCATION=proxy.url)
    cache.set("k", "v")
    proxy.drop_next_reply()
    assert cache.get("k") == "v"
    assert proxy.accepted == 2


def test_reply_cut_mid_way_raises_for_a_write(make_cache, server, proxy):
    """AT-MOST-ONCE: a connection cut in the middle of the reply to a write raises;
    the write ran once."""
    cache = make_cache(LOCATION=proxy.url)
    cache.set("big", "x" * 10000)
    proxy.cut_next_reply(keep=3)
    with pytest.raises(ConnectionInterrupted):
        cache.incr_version("big")  # a script reply, cut after 3 bytes
    assert cache.get("big", version=2) == "x" * 10000
    assert cache.get("big") is None


def test_client_kill_storm_never_double_applies(make_cache, server):
    """AT-MOST-ONCE: 4 threads INCR one counter while another connection kills
    clients every 30 ms. Every acknowledged INCR was applied once: the counter equals
    the acknowledged increments plus at most the ones that raised, and no two
    acknowledged INCRs returned the same value."""
    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "storm"}})
    cache.set("counter", 0)
    acknowledged, failed = [], []
    stop = threading.Event()

    def work():
        while not stop.is_set():
            try:
                acknowledged.append(cache.incr("counter"))
            except ConnectionInterrupted:
                failed.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        server.command("CLIENT KILL TYPE normal SKIPME yes")
        time.sleep(0.03)
    stop.set()
    for thread in threads:
        thread.join(10)
    total = int(server.command("GET :1:counter")[0])
    assert len(acknowledged) > 100
    assert len(set(acknowledged)) == len(acknowledged)
    assert len(acknowledged) <= total <= len(acknowledged) + len(failed)
    assert cache.incr("counter") == total + 1


# -- OWN-REPLY ------------------------------------------------------------------------


def test_a_stray_reply_is_never_served_to_the_next_command(make_cache, proxy):
    """OWN-REPLY: when the server (here the proxy) sends a reply twice, the copy is
    never taken as the reply to the next command: that connection is discarded."""
    cache = make_cache(LOCATION=proxy.url)
    cache.set("a", "value of a")
    cache.set("b", "value of b")
    proxy.duplicate_next_reply()
    assert cache.get("a") == "value of a"
    assert proxy.wait_armed_fault_used()
    for _ in range(3):
        assert cache.get("b") == "value of b"
        assert cache.get("a") == "value of a"


def _threads_read_their_own(cache, prefix, threads, rounds=300) -> list:
    """Run ``threads`` threads that each write then read their own key ``rounds``
    times on ``cache``; return the reads that were not the thread's own value."""
    errors = []

    def work(n):
        for i in range(rounds):
            cache.set(f"{prefix}{n}", (n, i))
            got = cache.get(f"{prefix}{n}")
            if got != (n, i):
                errors.append((n, i, got))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return errors


def test_many_threads_each_read_their_own_values(make_cache):
    """OWN-REPLY: 16 threads sharing one backend each write and read back their own
    keys 300 times; every read returns that thread's own value."""
    assert _threads_read_their_own(make_cache(), "t", threads=16) == []


# -- BOUNDED and RECOVERY ---------------------------------------------------------------


@pytest.mark.parametrize("keep_data", [False, True])
def test_server_restarted_on_the_same_port(make_cache, own_server, keep_data):
    """RECOVERY: after a SIGKILL and a restart on the same port, the next calls
    succeed with no error (the dead idle connections are found before writing), and
    the data is there when the server kept it."""
    cache = make_cache(LOCATION=own_server.url)
    cache.set("k", "before")
    cache.set("n", 5)
    own_server.restart(keep_data=keep_data)
    assert cache.get("k") == ("before" if keep_data else None)
    cache.set("n", 5)
    assert cache.incr("n") == 6  # a write right after the restart runs once


def test_killed_server_fails_fast_then_recovers(make_cache, own_server):
    """BOUNDED + RECOVERY: with the server killed, calls raise within the connect
    timeout (not a hang); once it is back on its port they succeed."""
    cache = make_cache(LOCATION=own_server.url,
                       OPTIONS={"SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.5})
    cache.set("k", 1)
    own_server.kill()
    started = time.monotonic()
    with pytest.raises(ConnectionInterrupted):
        cache.set("k", 2)
    assert time.monotonic() - started < 3
    own_server.start()
    assert cache.set("k", 3) is True
    assert cache.get("k") == 3


def test_paused_server_times_out_then_recovers(make_cache, own_server):
    """BOUNDED + RECOVERY: a SIGSTOPped server makes a call fail after about
    SOCKET_TIMEOUT, not hang; after SIGCONT the cache works again, and the late reply
    to the timed-out command is never served to a later one."""
    cache = make_cache(LOCATION=own_server.url, OPTIONS={"SOCKET_TIMEOUT": 0.5})
    cache.set("k", "v")
    cache.set("other", "o")
    own_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionInterrupted) as info:
            cache.get("k")
        assert 0.4 < time.monotonic() - started < 3
        assert isinstance(info.value, valkey.exceptions.TimeoutError)
    finally:
        own_server.resume()
    for _ in range(3):
        assert cache.get("other") == "o"
        assert cache.get("k") == "v"


def test_the_socket_timeout_is_kept_by_the_kernel(make_cache, server):
    """BOUNDED, cheaply: a plain socket's timeout moves from CPython (which polls before
    every send and recv) to the kernel (SO_RCVTIMEO/SO_SNDTIMEO): the socket is
    blocking and the kernel holds SOCKET_TIMEOUT (the paused-server tests prove it
    still fires)."""
    import socket
    import struct

    from django_valkey_fast._valkeypy import KERNEL_TIMEOUTS

    if not KERNEL_TIMEOUTS:
        pytest.fail("kernel timeouts are expected on Linux")
    cache = make_cache(OPTIONS={"SOCKET_TIMEOUT": 0.25})
    cache.set("k", "v")
    (link,) = channel_of(cache.client.get_client(True))._idle
    assert link.sock.gettimeout() is None
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        seconds, microseconds = struct.unpack(
            "ll", link.sock.getsockopt(socket.SOL_SOCKET, option, 16))
        assert seconds == 0 and abs(microseconds - 250000) < 20000  # (kernel ticks)


def test_a_write_to_a_paused_server_times_out_and_is_not_resent(make_cache, own_server):
    """BOUNDED + AT-MOST-ONCE: a value larger than the socket buffers, written to a
    SIGSTOPped server, fails after about SOCKET_TIMEOUT (the kernel's send timeout)
    as a timeout, and is not sent again: after SIGCONT the key holds the old value or
    nothing of the new one was stored."""
    cache = make_cache(LOCATION=own_server.url, OPTIONS={"SOCKET_TIMEOUT": 0.5})
    cache.set("big", "old")
    value = b"x" * (64 << 20)
    own_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionInterrupted) as info:
            cache.set("big", value)
        assert 0.4 < time.monotonic() - started < 5
        assert isinstance(info.value, valkey.exceptions.TimeoutError)
        assert "writing" in str(info.value)
    finally:
        own_server.resume()
    assert cache.get("big") == "old"
    assert cache.set("after", 1) is True


def test_maxclients_reached_gives_a_clear_error_then_recovers(make_cache, own_server):
    """BOUNDED + RECOVERY: when the server refuses new clients (maxclients), a call
    that needs a new connection raises ConnectionInterrupted naming the reason;
    once a place is free, calls succeed."""
    own_server.command("CONFIG SET maxclients 1")
    import socket

    holder = socket.create_connection(("127.0.0.1", own_server.port))
    try:
        holder.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert holder.recv(100) == b"+PONG\r\n"  # the only client place is taken
        cache = make_cache(LOCATION=own_server.url, OPTIONS={"SOCKET_TIMEOUT": 2})
        with pytest.raises(ConnectionInterrupted) as info:
            cache.set("k", 1)
        assert "max" in str(info.value).lower()
    finally:
        holder.close()
    _wait_until(lambda: _try(lambda: cache.set("k", 2)), what="a free client place")
    assert cache.get("k") == 2


def _try(call):
    try:
        return call()
    except ConnectionInterrupted:
        return False


def test_maxmemory_noeviction_refuses_writes_and_keeps_reads(make_cache, own_server):
    """RECOVERY: a server out of memory (noeviction) refuses writes with a clear
    error; reads keep working on the same connections; IGNORE_EXCEPTIONS gives False."""
    cache = make_cache(LOCATION=own_server.url)
    quiet = make_cache(LOCATION=own_server.url, OPTIONS={"IGNORE_EXCEPTIONS": True})
    cache.set("small", "kept")
    own_server.command("CONFIG SET maxmemory-policy noeviction", "CONFIG SET maxmemory 1")
    try:
        with pytest.raises(ConnectionInterrupted) as info:
            cache.set("big", "x" * 100000)
        assert isinstance(info.value, valkey.exceptions.OutOfMemoryError)
        assert quiet.set("big", "x") is False
        assert cache.get("small") == "kept"
        assert _channel(cache).open_count() == 1  # an error reply keeps the connection
    finally:
        own_server.command("CONFIG SET maxmemory 0")
    assert cache.set("big", "y") is True


def test_fork_while_threads_work(make_cache):
    """OWN-REPLY across fork: threads keep using the cache while the process forks;
    the child gets connections of its own (it never reads a reply meant for a parent
    thread) and every parent thread reads back its own values."""
    import multiprocessing

    cache = make_cache()
    stop = threading.Event()
    errors = []

    def work(n):
        i = 0
        while not stop.is_set():
            i += 1
            cache.set(f"p{n}", i)
            if cache.get(f"p{n}") != i:
                errors.append((n, i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child():
        values = []
        key = f"child-{os.getpid()}"
        for i in range(50):
            cache.set(key, i)
            values.append(cache.get(key))
        queue.put(values)

    try:
        processes = [context.Process(target=child) for _ in range(3)]
        for process in processes:
            process.start()
        for _ in processes:
            assert queue.get(timeout=20) == list(range(50))
        for process in processes:
            process.join(10)
            assert process.exitcode == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []


# -- POOL -------------------------------------------------------------------------------


def test_blocking_pool_serves_every_thread_while_connections_are_idle(make_cache, server):
    """POOL: with a BlockingConnectionPool of 4, 24 threads all get served (a thread
    waiting for a connection is woken when one comes back) and no more than 4
    connections ever exist."""
    cache = make_cache(OPTIONS={
        "CONNECTION_POOL_CLASS": "valkey.BlockingConnectionPool",
        "CONNECTION_POOL_KWARGS": {"max_connections": 4, "timeout": 5,
                                   "client_name": "blocking"},
    })
    cache.set("k", "v")
    errors, peak = [], []

    def work():
        for _ in range(50):
            try:
                assert cache.get("k") == "v"
            except Exception as error:  # noqa: BLE001 (collected for the assertion)
                errors.append(error)
            peak.append(_channel(cache).open_count())

    threads = [threading.Thread(target=work) for _ in range(24)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert time.monotonic() - started < 4.5  # nobody sat out the pool's 5 s timeout
    assert max(peak) <= 4
    clients = server.command("CLIENT LIST")[0].count("name=blocking")
    assert clients <= 4


@contextlib.contextmanager
def _only_connection_busy(cache, server):
    """Keep the cache's only connection busy: a thread's GET waits on a paused server."""
    cache.set("k", "v")
    server.pause()
    busy = threading.Thread(target=_try, args=(lambda: cache.get("k"),))
    try:
        busy.start()
        _wait_until(lambda: _channel(cache).idle_count() == 0, what="the busy connection")
        yield
    finally:
        server.resume()
        busy.join(10)


def test_blocking_pool_times_out_when_every_connection_is_busy(make_cache, own_server):
    """POOL + BOUNDED: when all max_connections are busy (the server is paused with
    one command in flight), the next caller waits the pool's timeout, then raises
    'No connection available'."""
    cache = make_cache(LOCATION=own_server.url, OPTIONS={
        "SOCKET_TIMEOUT": 3,
        "CONNECTION_POOL_CLASS": "valkey.BlockingConnectionPool",
        "CONNECTION_POOL_KWARGS": {"max_connections": 1, "timeout": 0.5},
    })
    with _only_connection_busy(cache, own_server):
        started = time.monotonic()
        with pytest.raises(ConnectionInterrupted) as info:
            cache.get("k")
        assert "No connection available" in str(info.value)
        assert 0.4 < time.monotonic() - started < 2.5
    assert cache.get("k") == "v"


def test_plain_pool_refuses_past_max_connections(make_cache, own_server):
    """POOL: a ConnectionPool with max_connections=1 raises 'Too many connections' for
    a second concurrent caller at once, as valkey-py does."""
    cache = make_cache(LOCATION=own_server.url, OPTIONS={
        "SOCKET_TIMEOUT": 3, "CONNECTION_POOL_KWARGS": {"max_connections": 1}})
    with _only_connection_busy(cache, own_server):
        with pytest.raises(ConnectionInterrupted) as info:
            cache.get("k")
        assert "Too many connections" in str(info.value)


def test_idle_connections_after_a_burst_are_closed(make_cache, server):
    """POOL: after a burst of 64 threads, connections left idle for longer than the
    channel's idle_timeout are closed at the next use (here 0.2 s), on the server too."""
    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "burst"}})
    cache.set("k", "v")
    barrier = threading.Barrier(64)

    def work():
        barrier.wait()
        for _ in range(20):
            cache.get("k")

    threads = [threading.Thread(target=work) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    channel = _channel(cache)
    burst = channel.open_count()
    assert burst > 4
    channel.idle_timeout = 0.2
    try:
        time.sleep(0.3)  # time itself is the condition: let them all grow stale
        assert cache.get("k") == "v"
        assert channel.open_count() <= 2
        _wait_until(lambda: server.command("CLIENT LIST")[0].count("name=burst") <= 2,
                    what="the server to see the connections closed")
    finally:
        channel.idle_timeout = IDLE_TIMEOUT


def test_write_refused_because_the_server_is_gone_is_resent(make_cache, own_server):
    """AT-MOST-ONCE + RECOVERY: a connection found closed *before* writing (the server
    restarted while it sat idle) is replaced and the write sent once, with no error."""
    cache = make_cache(LOCATION=own_server.url)
    cache.set("n", 1)
    own_server.restart(keep_data=True)
    assert cache.incr("n") == 2
    assert own_server.command("GET :1:n")[0] == "2"


def test_connection_errors_keep_valkey_py_types(make_cache, own_server):
    """Code written for django-valkey catches valkey-py's ConnectionError: the error
    for a down server is still one (and a ConnectionInterrupted)."""
    cache = make_cache(LOCATION=own_server.url, OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.5})
    own_server.kill()
    with pytest.raises(ValkeyConnectionError):
        cache.get("k")
    own_server.start()
    assert os.getpid() and cache.get("k") is None


@pytest.mark.parametrize("pool_options", [
    {},
    {"CONNECTION_POOL_CLASS": "valkey.BlockingConnectionPool",
     "CONNECTION_POOL_KWARGS": {"max_connections": 2, "timeout": 20}},
], ids=["ConnectionPool", "BlockingConnectionPool"])
def test_disconnect_while_threads_work_never_shares_a_connection(make_cache, pool_options):
    """OWN-REPLY + POOL: idle connections closed (``disconnect``) over and over while 8
    threads work (with a blocking pool, most of them waiting for a connection): no
    connection is ever handed to two threads (each reads its own values), and the
    channel's count of open connections stays exact."""
    cache = make_cache(OPTIONS=pool_options)
    cache.set("warm", 1)
    channel = _channel(cache)
    stop = threading.Event()

    def disconnector():
        while not stop.is_set():
            channel.disconnect()

    closer = threading.Thread(target=disconnector)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: shake out check-then-act races
    try:
        closer.start()
        errors = _threads_read_their_own(cache, "d", threads=8)
    finally:
        stop.set()
        closer.join(10)
        sys.setswitchinterval(interval)
    assert errors == []
    assert channel.open_count() == channel.idle_count() >= 0


def test_the_reuse_check_works_without_poll(monkeypatch):
    """OWN-REPLY where ``select.poll`` does not exist (Windows): the reuse check falls
    back to ``select.select`` and still sees unread bytes and EOF."""
    import select
    import socket

    from django_valkey_fast._valkeypy import _readable_check

    monkeypatch.delattr(select, "poll")
    left, right = socket.socketpair()
    with left, right:
        check = _readable_check(left)
        assert not check(0)
        right.sendall(b"+stray\r\n")
        _wait_until(lambda: bool(check(0)), what="the stray bytes")
    assert not _readable_check(None)(0)
