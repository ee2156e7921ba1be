"""Connections as django-valkey names them: URLs, factories, pools, options, replicas."""

import asyncio
import threading

import pytest
import valkey
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_valkey_fast.exceptions import ConnectionInterrupted
from django_valkey_fast.pool import ConnectionFactory
from tests.servers import Server


@pytest.mark.parametrize("scheme", ["valkey", "redis"])
def test_tcp_url_schemes(make_cache, server, scheme):
    cache = make_cache(LOCATION=f"{scheme}://127.0.0.1:{server.port}/2")
    cache.set("k", scheme)
    assert cache.get("k") == scheme
    assert server.command("SELECT 2", "GET :1:k")[1]  # really in db 2


def test_unix_socket(make_cache, server):
    cache = make_cache(LOCATION=f"unix://{server.unix_socket}?db=3")
    cache.set("k", "unix")
    assert cache.get("k") == "unix"
    assert cache.client.get_client().connection_pool.connection_class is valkey.UnixDomainSocketConnection


def test_location_list_and_comma_string(make_cache, replicated):
    primary, replica = replicated
    as_list = make_cache(LOCATION=[primary.url, replica.url])
    as_string = make_cache(LOCATION=f"{primary.url},{replica.url}")
    assert as_list.client._server == as_string.client._server == [primary.url, replica.url]


def _commands_processed(server):
    info = server.command("INFO stats")[0]
    return int(info.split("total_commands_processed:")[1].split()[0])


def _read_commands(server):
    info = server.command("INFO commandstats")[0]
    for line in info.splitlines():
        if line.startswith("cmdstat_get:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_replicas_serve_reads_and_primary_takes_writes(make_cache, replicated):
    primary, replica = replicated
    cache = make_cache(LOCATION=[primary.url, replica.url])
    cache.set("k", "v")
    primary.replicated_to(replica)
    before_replica, before_primary = _read_commands(replica), _read_commands(primary)
    for _ in range(5):
        assert cache.get("k") == "v"
    assert _read_commands(replica) - before_replica == 5
    assert _read_commands(primary) == before_primary
    assert cache.client.get_client(write=False).connection_pool is not \
        cache.client.get_client(write=True).connection_pool


def test_pools_are_process_wide(make_cache, server):
    first, second = make_cache(), make_cache()
    assert first.client.get_client().connection_pool is second.client.get_client().connection_pool
    other_options = make_cache(OPTIONS={"SOCKET_TIMEOUT": 3})
    assert other_options.client.get_client().connection_pool is not \
        first.client.get_client().connection_pool


def test_connections_are_reused_not_opened_per_call(make_cache, server):
    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "reuse-probe"}})

    def clients():
        listing = server.command("CLIENT LIST")[0]
        return sum("name=reuse-probe" in line for line in listing.splitlines())

    def work():
        for i in range(100):
            cache.set(f"k{i}", i)
            cache.get(f"k{i}")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= clients() <= 4


def test_connection_pool_class_and_kwargs(make_cache):
    cache = make_cache(OPTIONS={
        "CONNECTION_POOL_CLASS": "valkey.BlockingConnectionPool",
        "CONNECTION_POOL_KWARGS": {"max_connections": 3, "timeout": 2},
    })
    cache.set("k", 1)
    pool = cache.client.get_client().connection_pool
    assert isinstance(pool, valkey.BlockingConnectionPool) and pool.max_connections == 3
    assert cache.get("k") == 1


class RecordingValkey(valkey.Valkey):
    """A BASE_CLIENT_CLASS that records its construction kwargs."""

    def __init__(self, *args, marker=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.marker = marker


def test_base_client_class_and_kwargs(make_cache):
    cache = make_cache(OPTIONS={
        "BASE_CLIENT_CLASS": "tests.test_connections.RecordingValkey",
        "BASE_CLIENT_KWARGS": {"marker": "yes"},
    })
    client = cache.client.get_client()
    assert isinstance(client, RecordingValkey) and client.marker == "yes"
    cache.set("k", 1)
    assert cache.get("k") == 1


@pytest.mark.parametrize("parser", ["valkey._parsers.resp2._RESP2Parser",
                                    "valkey._parsers.libvalkey._LibvalkeyParser"])
def test_parser_class(make_cache, parser):
    cache = make_cache(OPTIONS={"PARSER_CLASS": parser})
    cache.set_many({"a": 1, "b": "two"})
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": "two"}
    assert cache.client.get_client().connection_pool.connection_kwargs["parser_class"].__name__ \
        == parser.rsplit(".", 1)[1]


class CountingFactory(ConnectionFactory):
    """A custom CONNECTION_FACTORY (subclassing the documented base)."""

    connects = 0

    def connect(self, url):
        CountingFactory.connects += 1
        return super().connect(url)


def test_connection_factory_option_and_setting(make_cache):
    CountingFactory.connects = 0
    cache = make_cache(OPTIONS={"CONNECTION_FACTORY": "tests.test_connections.CountingFactory"})
    cache.set("k", 1)
    assert CountingFactory.connects == 1
    with override_settings(DJANGO_VALKEY_CONNECTION_FACTORY="tests.test_connections.CountingFactory"):
        other = make_cache()
        other.get("k")
    assert CountingFactory.connects == 2


def test_socket_timeout_options_are_checked(make_cache):
    cache = make_cache(OPTIONS={"SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.25})
    kwargs = cache.client.get_client().connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.5 and kwargs["socket_connect_timeout"] == 0.25
    with pytest.raises(ImproperlyConfigured, match="SOCKET_TIMEOUT"):
        make_cache(OPTIONS={"SOCKET_TIMEOUT": "1"}).get("k")


def test_password_and_username(make_cache, auth_server):
    by_password = make_cache(LOCATION=auth_server.url, OPTIONS={"PASSWORD": "s3cret"})
    by_password.set("k", "v")
    assert by_password.get("k") == "v"
    by_user = make_cache(LOCATION=auth_server.url,
                         OPTIONS={"USERNAME": "app", "PASSWORD": "apppass"})
    assert by_user.get("k") == "v"
    in_url = make_cache(LOCATION=f"valkey://app:apppass@127.0.0.1:{auth_server.port}/0")
    assert in_url.get("k") == "v"


def test_server_restart_is_survived(make_cache):
    process = Server()
    try:
        cache = make_cache(LOCATION=process.url)
        cache.set("k", 1)
        process.command("CLIENT KILL TYPE normal")  # drops our idle pooled connection
        assert cache.get("k") == 1  # retried once on a fresh connection
    finally:
        process.stop()


@pytest.mark.parametrize("scheme", ["valkeys", "rediss"])
def test_tls_url_schemes(make_cache, tls_server, scheme):
    process, cert = tls_server
    cache = make_cache(LOCATION=f"{scheme}://127.0.0.1:{process.tls_port}/0",
                       OPTIONS={"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": cert,
                                                           "ssl_check_hostname": False}})
    cache.set("k", scheme)
    assert cache.get("k") == scheme
    assert cache.client.get_client().connection_pool.connection_class is valkey.SSLConnection


def test_close_keeps_connections_unless_close_connection(make_cache, server):
    keep = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "keep"}})
    keep.set("k", 1)
    keep.close()
    assert server.clients_named("keep") == 1
    closing = make_cache(OPTIONS={"CLOSE_CONNECTION": True,
                                  "CONNECTION_POOL_KWARGS": {"client_name": "closing"}})
    closing.set("k", 2)
    assert server.clients_named("closing") == 1
    closing.close()
    assert server.settled_clients("closing", 0) == 0
    assert closing.get("k") == 2  # reconnects on next use


def test_forked_child_uses_its_own_connections(make_cache, server):
    import multiprocessing

    cache = make_cache(OPTIONS={"CONNECTION_POOL_KWARGS": {"client_name": "forking"}})
    cache.set("k", "parent")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child():
        cache.set("k", "child")
        queue.put(cache.get("k"))

    process = context.Process(target=child)
    process.start()
    assert queue.get(timeout=10) == "child"
    process.join(10)
    assert process.exitcode == 0
    assert cache.get("k") == "child"  # the parent's connection was left intact
    cache.set("k", "parent again")
    assert cache.get("k") == "parent again"


def test_a_write_that_reaches_a_replica_goes_to_the_primary(make_cache, replicated):
    primary, replica = replicated
    cache = make_cache(LOCATION=[replica.url, primary.url])  # the replica listed first
    assert cache.set("k", "v") is True
    assert primary.command("GET :1:k")[0] != ""  # written on the primary
    assert cache.client._server[0] == primary.url
    primary.replicated_to(replica)
    assert cache.get("k") == "v"  # and reads now go to the replica
    other = make_cache(LOCATION=[replica.url, primary.url])

    async def async_write():
        assert await other.aset("a", 1) is True
        return other.client._server[0]

    import asyncio

    assert asyncio.run(async_write()) == primary.url


def test_configuration_is_prepared_once_per_process(make_cache, server):
    zlib = {"COMPRESSOR": "django_valkey_fast.compressors.zlib.ZlibCompressor"}
    first, second = make_cache(OPTIONS=dict(zlib)), make_cache(OPTIONS=dict(zlib))
    assert first.client is second.client  # one client per configuration
    assert first.client._codec is second.client._codec
    with override_settings(CACHE_COMPRESS_MIN_LENGTH=10_000):  # settings changed: rebuilt
        third = make_cache(OPTIONS=dict(zlib))
        assert third.client._codec is not first.client._codec
        assert third.client._codec.min_length == 10_000


def test_backends_of_one_configuration_share_no_attribute_dict(server):
    """OWN-STATE: every backend starts from the configuration's prepared attributes,
    each in a dict of its own: changing one backend (its prefix, its version) never
    changes another's keys; a subclass's attributes set before ``__init__`` stay."""
    from django_valkey_fast.cache import ValkeyCache

    first = ValkeyCache(server.url, {"KEY_PREFIX": "p", "VERSION": 2})
    second = ValkeyCache(server.url, {"KEY_PREFIX": "p", "VERSION": 2})
    assert first.__dict__ is not second.__dict__
    first.key_prefix, first.version = "changed", 9
    third = ValkeyCache(server.url, {"KEY_PREFIX": "p", "VERSION": 2})
    assert (second.key_prefix, second.version) == (third.key_prefix, third.version) == ("p", 2)
    assert third.make_key("k") == second.make_key("k") == "p:2:k"

    class Tagged(ValkeyCache):
        def __init__(self, server, params):
            self.tag = "mine"
            self.key_prefix = "set-before-init"  # as Django's BaseCache.__init__: replaced
            super().__init__(server, params)

    for tagged in [Tagged(server.url, {"KEY_PREFIX": "p"}) for _ in range(2)]:
        assert tagged.tag == "mine" and tagged.key_prefix == "p"
        assert tagged.make_key("k") == "p:1:k" and tagged.client.make_key("k") == "p:1:k"


def test_a_configuration_is_recognised_by_its_values_never_by_equality_alone(server):
    """Invariant: backends share prepared state only when their params are the same.
    The per-request shortcut (params whose values are the very objects of the last
    params seen) must not confuse params that are equal but not the same (VERSION 1
    and 1.0 make different keys), nor params whose values differ."""
    from django_valkey_fast.cache import ValkeyCache

    options = {"CONNECTION_POOL_KWARGS": {"client_name": "same"}}
    first = ValkeyCache(server.url, {"VERSION": 1, "OPTIONS": options})
    again = ValkeyCache(server.url, {"VERSION": 1, "OPTIONS": options})
    assert again._config is first._config and again.client is first.client
    floating = ValkeyCache(server.url, {"VERSION": 1.0, "OPTIONS": options})
    assert floating._config is not first._config
    assert floating.make_key("k") == ":1.0:k" and first.make_key("k") == ":1:k"
    other = ValkeyCache(server.url, {"VERSION": 1, "OPTIONS": {"CLIENT_CLASS": (
        "django_valkey_fast.client.HerdClient")}})
    assert type(other.client).__name__ == "HerdClient"
    assert type(ValkeyCache(server.url, {"VERSION": 1, "OPTIONS": options}).client
                ).__name__ == "DefaultClient"
    # The same dict, changed in place between two backends: new settings.
    before = ValkeyCache(server.url, {"VERSION": 1, "OPTIONS": options})
    options["IGNORE_EXCEPTIONS"] = True
    options["CONNECTION_POOL_KWARGS"]["client_name"] = "changed"
    after = ValkeyCache(server.url, {"VERSION": 1, "OPTIONS": options})
    assert after._config is not before._config
    assert after._ignore_exceptions is True and before._ignore_exceptions is False


def test_backend_attributes_come_from_the_configuration_unless_set_on_the_backend(server):
    """A backend reads the attributes its configuration prepared (Django's parsed
    settings among them) without copying them; an attribute assigned on one backend
    is that backend's alone, and a missing one is an AttributeError."""
    from django_valkey_fast.cache import ValkeyCache

    params = {"TIMEOUT": 60, "OPTIONS": {"MAX_ENTRIES": 5}}
    first, second = ValkeyCache(server.url, params), ValkeyCache(server.url, params)
    assert first.default_timeout == second.default_timeout == 60
    assert first._max_entries == 5 and first._server == server.url  # (Django's parsing)
    first._max_entries = 7
    assert first._max_entries == 7 and second._max_entries == 5
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        first.nothing_here
    assert not hasattr(first, "nothing_here") and getattr(second, "nothing", 3) == 3


def test_a_backend_per_request_builds_nothing_that_reaches_the_server(settings, server):
    """Django builds a backend per request under ASGI. Invariant: after the first
    request, building a backend, running a command and closing it makes no valkey-py
    client, pool or connection: everything that reaches the server is shared."""
    import valkey
    from django.core.cache import caches

    settings.CACHES = {"per-request": {"BACKEND": "django_valkey_fast.cache.ValkeyCache",
                                       "LOCATION": server.url}}
    built = []
    original = valkey.Valkey.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    def request():
        cache = caches.create_connection("per-request")
        cache.set("k", "v")
        assert cache.get("k") == "v"
        cache.close()

    request()
    clients_before = connected_clients(server)
    valkey.Valkey.__init__ = counting
    try:
        for _ in range(50):
            request()
    finally:
        valkey.Valkey.__init__ = original
    assert built == []
    assert connected_clients(server) == clients_before

    async def async_requests():
        for _ in range(50):
            cache = caches.create_connection("per-request")
            assert await cache.aget("k") == "v"
            await cache.aclose()

    asyncio.run(async_requests())  # one loop: one more connection, not one per request
    assert connected_clients(server) == clients_before + 1


def connected_clients(server) -> int:
    info = server.command("INFO clients")[0]
    return int(info.split("connected_clients:")[1].split()[0])


def test_a_backend_with_other_keys_gets_its_own_client(make_cache, server):
    """Invariant: sharing the client never changes a backend's keys. A backend whose
    key function is assigned after construction (as Django's tests do) stops using
    the configuration's client; the other backends keep their keys."""
    first, second = make_cache(), make_cache()
    assert first.client is second.client
    second.key_func = lambda key, prefix, version: f"other:{key}"
    assert second.client is not first.client
    assert first.make_key("k") == ":1:k"
    assert second.make_key("k") == "other:k"
    first.set("k", "first")
    second.set("k", "second")
    assert first.get("k") == "first" and second.get("k") == "second"
    third = make_cache()
    assert third.client is first.client and third.make_key("k") == ":1:k"


@pytest.mark.parametrize("setting, value, key, timeout", [
    ("key_prefix", "other", "other:1:k", 300),
    ("version", 7, ":7:k", 300),
    ("default_timeout", 60, ":1:k", 60),
])
def test_key_settings_assigned_after_construction_reach_the_client(
        make_cache, server, setting, value, key, timeout):
    """Invariant: a backend reads and writes the keys (and sets the timeouts) its own
    attributes say. Assigning ``key_prefix``, ``version`` or ``default_timeout`` on a
    backend whose shared client is already built must not leave that client on the old
    value (a silent wrong answer: another prefix's data); the other backends of the
    configuration keep theirs."""
    first, second = make_cache(), make_cache()
    server.command(f"DEL {key} :1:k")
    assert first.client is second.client
    setattr(second, setting, value)
    assert getattr(second, setting) == value
    assert second.make_key("k") == key and first.make_key("k") == ":1:k"
    second.set("k", "second")
    assert int(server.command(f"TTL {key}")[0].lstrip(":")) in (timeout, timeout - 1)
    assert second.get("k") == "second"
    assert first.get("k") == (None if key != ":1:k" else "second")
    # A backend with a client of its own (its key function changed) follows too.
    second.key_func = lambda key, prefix, version: f"{prefix}|{version}|{key}"
    own = second.client
    setattr(second, setting, {"key_prefix": "again", "version": 8, "default_timeout": 90}[setting])
    assert second.client is own  # (the same client, told of the change)
    assert second.make_key("k") == f"{second.key_prefix}|{second.version}|k"
    assert own.make_key("k") == second.make_key("k")
    assert own.default_timeout == second.default_timeout
    assert make_cache().make_key("k") == ":1:k" and first.client is make_cache().client


def test_configurations_with_other_locations_share_nothing(server):
    """Invariant: the prepared configuration is keyed by LOCATION too: two backends
    with the same params and different servers never share a client or a router."""
    from tests.servers import Server

    from django_valkey_fast.cache import ValkeyCache
    from django_valkey_fast.client.sharded import ShardClient

    other = Server()
    try:
        one, two = ValkeyCache(server.url, {}), ValkeyCache(other.url, {})
        assert one.client is not two.client
        one.set("where", "one")
        assert two.get("where") is None
        sharded = {"OPTIONS": {"CLIENT_CLASS": "django_valkey_fast.client.ShardClient"}}
        assert isinstance(ValkeyCache([server.url, other.url], sharded).client, ShardClient)
        only_one = ValkeyCache([server.url], sharded)
        assert only_one.client._router.nodes == [server.url]
    finally:
        other.stop()


@pytest.mark.parametrize("scheme", ["valkeys", "rediss"])
def test_tls_checks_the_host_name_by_default(make_cache, tls_server, scheme):
    """Secure by default: a certificate that is valid (trusted) but for another host
    (here 127.0.0.1, reached as "localhost") is refused, sync and async; the host it
    names is accepted; opting out is explicit (ssl_check_hostname False)."""
    import asyncio

    process, cert = tls_server
    trusted = {"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": cert}}
    wrong_host = make_cache(LOCATION=f"{scheme}://localhost:{process.tls_port}/0",
                            OPTIONS=dict(trusted, SOCKET_TIMEOUT=5))
    with pytest.raises(ConnectionInterrupted, match="(?i)hostname|certificate|match"):
        wrong_host.set("k", 1)

    async def async_side():
        with pytest.raises(ConnectionInterrupted, match="(?i)hostname|certificate|match"):
            await wrong_host.aset("k", 1)

    asyncio.run(async_side())
    right_host = make_cache(LOCATION=f"{scheme}://127.0.0.1:{process.tls_port}/0",
                            OPTIONS=trusted)
    assert right_host.set("k", scheme) is True and right_host.get("k") == scheme
    opted_out = make_cache(
        LOCATION=f"{scheme}://localhost:{process.tls_port}/0",
        OPTIONS={"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": cert, "ssl_check_hostname": False}})
    assert opted_out.get("k") == scheme
