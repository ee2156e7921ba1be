"""Native async on the ValkeyCache alias, against real servers."""

import asyncio
import datetime
import logging
import threading
import time

import pytest
import valkey
from django.core.cache import caches

from django_valkey_fast import async_channel as aio
from django_valkey_fast.exceptions import ConnectionInterrupted
from tests.servers import free_port

def slow(seconds):
    """A command the server takes ``seconds`` to answer."""
    return ("DEBUG", "SLEEP", str(seconds))


async def test_django_async_api(cache):
    assert await cache.aset("k", {"a": 1}) is True
    assert await cache.aget("k") == {"a": 1}
    assert await cache.aget("missing", "default") == "default"
    assert await cache.aadd("k", 2) is False
    assert await cache.aadd("new", 2) is True
    assert await cache.ahas_key("new") is True
    assert await cache.adelete("new") is True
    assert await cache.adelete("new") is False
    assert await cache.aset_many({"a": 1, "b": "two"}) == []
    assert await cache.aget_many(["a", "b", "c"]) == {"a": 1, "b": "two"}
    assert await cache.adelete_many(["a", "b"]) == 2
    await cache.aset("n", 10, 100)
    assert await cache.aincr("n", 5) == 15
    assert await cache.adecr("n") == 14
    assert 98 <= await cache.attl("n") <= 100
    with pytest.raises(ValueError):
        await cache.aincr("missing")
    assert await cache.aincr_version("n") == 2
    assert await cache.aget("n", version=2) == 14
    assert await cache.adecr_version("n", version=2) == 1
    assert await cache.atouch("n", 50) is True
    assert 48 <= await cache.attl("n") <= 50
    assert await cache.aget_or_set("gos", lambda: 7) == 7
    assert await cache.aget_or_set("gos", 8) == 7
    await cache.aset("gone", 1, 0)
    assert await cache.aget("gone") is None
    assert await cache.aclear() is True
    assert await cache.aget("gos") is None
    await cache.aclose()


async def test_extended_async_api(cache):
    await cache.aset("k", 1, None)
    assert await cache.apttl("k") is None
    assert await cache.aexpire("k", 30) is True
    assert await cache.apexpire("k", datetime.timedelta(seconds=20)) is True
    assert 18_000 < await cache.apttl("k") <= 20_000
    assert await cache.apersist("k") is True
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)
    assert await cache.aexpire_at("k", when) is True
    assert await cache.apexpire_at("k", int((time.time() + 40) * 1000)) is True
    await cache.amset({"u:1": 1, "u:2": 2})
    assert await cache.amget(["u:1", "u:2"]) == {"u:1": 1, "u:2": 2}
    assert sorted(await cache.akeys("u:*")) == ["u:1", "u:2"]
    assert sorted([key async for key in cache.aiter_keys("u:*", itersize=1)]) == ["u:1", "u:2"]
    assert await cache.adelete_pattern("u:*") == 2
    assert await cache.ahset("h", "f", "v") == 1
    assert await cache.ahkeys("h") == ["f"] and await cache.ahlen("h") == 1
    assert await cache.ahexists("h", "f") is True and await cache.ahdel("h", "f") == 1
    assert await cache.asadd("s", 1, 2, 3) == 3
    assert await cache.asmembers("s") == {1, 2, 3}
    assert await cache.asismember("s", 2) is True
    assert {m async for m in cache.asscan_iter("s", count=1)} == {1, 2, 3}
    lock = await cache.alock("resource", timeout=5)
    async with lock:
        other = await cache.aget_lock("resource", blocking=False)
        assert await other.acquire() is False


async def test_sync_and_async_share_one_alias_and_bytes(cache):
    cache.set("from-sync", [1, 2])
    assert await cache.aget("from-sync") == [1, 2]
    await cache.aset("from-async", -5)
    assert cache.get("from-async") == -5
    raw = cache.client.get_client()
    assert raw.get(":1:from-async") == b"-5"


async def test_no_thread_hop(cache, monkeypatch):
    from asgiref.sync import SyncToAsync

    def refuse(*args, **kwargs):
        raise AssertionError("sync_to_async was used")

    monkeypatch.setattr(SyncToAsync, "__call__", refuse)
    threads = threading.active_count()
    await cache.aset("k", 1)
    await cache.aget("k")
    await cache.aadd("k2", 1)
    await cache.aget_many(["k", "k2"])
    await cache.aset_many({"a": 1})
    await cache.adelete_many(["a"])
    await cache.ahas_key("k")
    await cache.aincr("k")
    await cache.adecr("k")
    await cache.aincr_version("k")
    await cache.atouch("k2")
    await cache.aget_or_set("k3", 1)
    await cache.adelete("k3")
    await cache.aclose()
    assert threading.active_count() == threads


async def test_concurrent_aincr_is_atomic_and_keeps_ttl(cache):
    await cache.aset("counter", 0, 100)
    results = await asyncio.gather(*[cache.aincr("counter") for _ in range(50)])
    assert sorted(results) == list(range(1, 51))
    assert await cache.aget("counter") == 50
    assert 98 <= await cache.attl("counter") <= 100


async def test_many_operations_are_one_write(cache, monkeypatch):
    writes = []
    send = aio.RespConnection.send

    def counting_send(self, packed, replies, pipeline=False):
        writes.append(replies)
        return send(self, packed, replies, pipeline)

    await cache.aset("warm", 1)
    monkeypatch.setattr(aio.RespConnection, "send", counting_send)
    await cache.aset_many({f"k{i}": i for i in range(20)})
    await cache.aget_many([f"k{i}" for i in range(20)])
    await cache.adelete_many([f"k{i}" for i in range(20)])
    assert writes == [20, 1, 1]


async def test_two_hundred_concurrent_tasks_on_few_connections(make_cache, server):
    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "crowd"}})

    async def worker(i):
        await cache.aset(f"w{i}", i)
        assert await cache.aget(f"w{i}") == i
        await cache.aincr("total", ignore_key_check=True)
        many = await cache.aget_many([f"w{i}", f"w{(i + 1) % 200}"])
        assert many[f"w{i}"] == i
        return i

    assert sorted(await asyncio.gather(*[worker(i) for i in range(200)])) == list(range(200))
    assert await cache.aget("total") == 200
    assert 1 <= server.clients_named("crowd") <= 2


def test_consecutive_event_loops(make_cache, server):
    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "loops"}})

    async def use(value):
        await cache.aset("k", value)
        return await cache.aget("k")

    for value in range(3):
        assert asyncio.run(use(value)) == value
    assert server.settled_clients("loops", 1) == 1  # closed loops' sockets were closed
    assert cache.get("k") == 2  # and the sync side is unaffected


def test_a_thread_with_its_own_loop(make_cache):
    cache = make_cache()
    errors = []

    def in_thread():
        async def work():
            for i in range(50):
                await cache.aset(f"t{i}", i)
                assert await cache.aget(f"t{i}") == i

        try:
            asyncio.run(work())
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    async def main():
        thread = threading.Thread(target=in_thread)
        thread.start()
        for i in range(50):
            await cache.aset(f"m{i}", i)
            assert await cache.aget(f"m{i}") == i
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    asyncio.run(main())
    assert errors == []
    assert cache.get("t49") == 49 and cache.get("m49") == 49


def test_loop_closed_with_a_command_in_flight(make_cache, server):
    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "inflight"}})
    loop = asyncio.new_event_loop()

    async def start_and_abandon():
        await cache.aset("k", 1)
        channel = cache.client._achannel(True)
        asyncio.ensure_future(channel.call(slow(0.1)))
        await asyncio.sleep(0.01)  # the script is running in the server

    loop.run_until_complete(start_and_abandon())
    loop.close()  # with the reply still outstanding
    time.sleep(0.2)

    async def again():
        return await cache.aget("k")

    assert asyncio.run(again()) == 1
    assert server.settled_clients("inflight", 1) == 1


async def test_cancelled_caller_does_not_corrupt_the_connection(cache):
    await cache.aset("k", "right")
    channel = cache.client._achannel(True)
    pending = asyncio.ensure_future(channel.call(slow(0.1)))
    await asyncio.sleep(0.01)
    pending.cancel()
    assert await cache.aget("k") == "right"
    assert await cache.aincr("n", ignore_key_check=True) == 1


async def test_ignore_exceptions_async(make_cache, caplog):
    cache = make_cache(LOCATION=f"valkey://127.0.0.1:{free_port()}/0",
                       OPTIONS={"IGNORE_EXCEPTIONS": True, "LOG_IGNORE_EXCEPTIONS": True})
    with caplog.at_level(logging.ERROR):
        assert await cache.aget("k", "default") == "default"
        assert await cache.aset("k", 1) is False
        assert await cache.aget_many(["a"]) == {}
        assert [key async for key in cache.aiter_keys("*")] == []
        assert [m async for m in cache.asscan_iter("s")] == []
        assert await cache.adelete_pattern("*") == 0
    assert "Exception ignored" in caplog.text


async def test_down_server_async(make_cache):
    cache = make_cache(LOCATION=f"valkey://127.0.0.1:{free_port()}/0",
                       OPTIONS={"SOCKET_CONNECT_TIMEOUT": 0.5})
    with pytest.raises(ConnectionInterrupted) as info:
        await cache.aget("k")
    assert isinstance(info.value, valkey.exceptions.ConnectionError)


async def test_timeout_async(make_cache, server):
    cache = make_cache(OPTIONS={"SOCKET_TIMEOUT": 0.2})
    await cache.aset("k", 1)
    channel = cache.client._achannel(True)
    started = time.monotonic()
    with pytest.raises(valkey.exceptions.TimeoutError):
        await channel.call(slow(1.5))
    assert 0.15 < time.monotonic() - started < 1.2  # (the server answers at 1.5 s)
    await asyncio.to_thread(server.command, "PING")  # answered once the sleep is over
    assert await cache.aget("k") == 1  # a new connection, replies in step


async def test_wrong_password_async(make_cache, auth_server):
    cache = make_cache(LOCATION=auth_server.url, OPTIONS={"PASSWORD": "wrong"})
    with pytest.raises(ConnectionInterrupted) as info:
        await cache.aget("k")
    assert isinstance(info.value, valkey.exceptions.AuthenticationError)
    good = make_cache(LOCATION=auth_server.url, OPTIONS={"USERNAME": "app", "PASSWORD": "apppass"})
    await good.aset("k", "v")
    assert await good.aget("k") == "v"


async def test_unix_socket_and_db_async(make_cache, server):
    cache = make_cache(LOCATION=f"unix://{server.unix_socket}?db=4")
    await cache.aset("k", "in db 4")
    assert server.command("SELECT 4", "EXISTS :1:k")[1] == ":1"


async def test_tls_async(make_cache, tls_server):
    process, cert = tls_server
    cache = make_cache(LOCATION=f"valkeys://127.0.0.1:{process.tls_port}/0",
                       OPTIONS={"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": cert,
                                                           "ssl_check_hostname": False}})
    await cache.aset("k", "tls")
    assert await cache.aget("k") == "tls"


async def test_replica_reads_async(make_cache, replicated):
    primary, replica = replicated
    cache = make_cache(LOCATION=[primary.url, replica.url])
    await cache.aset("k", "v")
    primary.replicated_to(replica)
    assert await cache.aget("k") == "v"
    read_channel = cache.client._achannel(False)
    assert read_channel.params["port"] == replica.port


async def test_pure_python_reader(make_cache, monkeypatch):
    from django_valkey_fast._resp_py import Reader

    monkeypatch.setattr(aio, "Reader", Reader)
    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "pure-reader"}})
    await cache.aset_many({f"k{i}": "x" * i * 100 for i in range(30)})
    assert await cache.aget_many([f"k{i}" for i in range(30)]) == {
        f"k{i}": "x" * i * 100 for i in range(30)}
    with pytest.raises(ValueError):
        await cache.aincr("missing")
    assert type(cache.client._achannel(True)._connection._reader) is Reader


async def test_single_item_batches_async(cache):
    assert await cache.aset_many({"only": 1}) == []
    assert await cache.aget_many(["only"]) == {"only": 1}
    assert await cache.adelete_many(["only"]) == 1
