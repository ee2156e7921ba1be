"""``manage.py valkey`` against real servers: one server, a primary with a replica, two
shards, a Cluster, AsyncValkeyCache, and a server that is down. Invariants: every
server of every topology is visited and a dead one is reported (and fails the
command); a destructive subcommand does nothing without confirmation; ``--json`` is
one JSON document."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.servers import Cluster, Server, free_port
from tests.test_sentinel import doomed_topology, sentinel_caches  # noqa: F401 - a fixture

APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_valkey_fast"]


def run(*args, answer=None, monkeypatch=None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    if answer is not None:
        monkeypatch.setattr("builtins.input", lambda question: answer)
    call_command("valkey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def as_json(*args) -> dict:
    return json.loads(run(*args, "--json")[0])


@pytest.fixture
def one(server):
    prefix = f"cmd{time.monotonic_ns()}"
    with override_settings(INSTALLED_APPS=APPS, CACHES={
            "default": {"BACKEND": "django_valkey_fast.cache.ValkeyCache",
                        "LOCATION": server.url, "KEY_PREFIX": prefix,
                        "OPTIONS": {"CLEAR_SCOPE": "prefix"}},
            "other": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        yield caches["default"]


def test_ping_and_info_and_stats_on_one_server(one, server):
    out, _ = run("ping")
    assert f"127.0.0.1:{server.port}" in out and "ms=" in out
    report = as_json("ping")
    (row,) = report["aliases"]["default"]
    assert row["ok"] and row["pong"] and row["ms"] > 0 and report["failed"] == 0
    assert "other" not in report["aliases"]  # (not one of this package's backends)
    one.set("counted", 1)
    (info,) = as_json("info")["aliases"]["default"]
    assert info["role"] == "master" and info["keys"] >= 1
    assert info["version"].split()[0] in ("Valkey", "Redis")
    one.get("counted")
    (stats,) = as_json("stats")["aliases"]["default"]
    assert stats["keyspace_hits"] >= 1 and 0 < stats["hit_ratio"] <= 1


def test_keys_are_streamed_and_bounded(one):
    one.set_many({f"listed{i}": i for i in range(30)})
    out, err = run("keys", "listed*", "--limit", "10")
    assert len(out.split()) == 10 and "--limit 10" in err
    report = as_json("keys", "listed*", "--limit", "0")
    assert sorted(report["keys"]) == sorted(f"listed{i}" for i in range(30))
    assert not report["truncated"]
    exactly = as_json("keys", "listed*", "--limit", "30")
    assert len(exactly["keys"]) == 30 and not exactly["truncated"]


def test_delete_pattern_asks_first(one, monkeypatch):
    one.set_many({"doomed1": 1, "doomed2": 2, "kept": 3})
    with pytest.raises(CommandError, match="nothing deleted"):
        run("delete-pattern", "doomed*", answer="n", monkeypatch=monkeypatch)
    assert one.get("doomed1") == 1
    out, _ = run("delete-pattern", "doomed*", answer="y", monkeypatch=monkeypatch)
    assert "deleted 2 key(s)" in out and one.get("doomed1") is None
    one.set("doomed3", 3)
    monkeypatch.setattr("builtins.input", lambda question: (_ for _ in ()).throw(EOFError))
    with pytest.raises(CommandError, match="nothing deleted"):  # (no terminal to ask)
        call_command("valkey", "delete-pattern", "doomed*", stdout=io.StringIO())
    assert as_json("delete-pattern", "doomed*", "--yes")["deleted"] == 1
    assert one.get("kept") == 3


def test_clear_asks_first_and_names_its_scope(one, monkeypatch):
    one.set("gone", 1)
    asked = []
    monkeypatch.setattr("builtins.input", lambda question: asked.append(question) or "no")
    with pytest.raises(CommandError, match="nothing cleared"):
        call_command("valkey", "clear", stdout=io.StringIO())
    assert "every key of its prefix" in asked[0] and one.get("gone") == 1
    assert as_json("clear", "--yes") == {"alias": "default", "cleared": True,
                                         "scope": "prefix"}
    assert one.get("gone") is None


def test_every_server_of_a_replicated_and_a_sharded_alias(replicated):
    primary, replica = replicated
    shards = [Server(), Server()]
    try:
        with override_settings(INSTALLED_APPS=APPS, CACHES={
                "replicated": {"BACKEND": "django_valkey_fast.cache.ValkeyCache",
                               "LOCATION": [primary.url, replica.url]},
                "sharded": {"BACKEND": "django_valkey_fast.cache.ValkeyCache",
                            "LOCATION": [shard.url for shard in shards],
                            "OPTIONS": {"CLIENT_CLASS": "django_valkey_fast.client.ShardClient"}},
        }):
            report = as_json("info")
            roles = [row["role"] for row in report["aliases"]["replicated"]]
            assert roles == ["master", "slave"]
            ports = {row["server"].rsplit(":", 1)[1].split("/")[0]
                     for row in report["aliases"]["sharded"]}
            assert ports == {str(shard.port) for shard in shards}
            assert as_json("ping", "--alias", "sharded")["failed"] == 0
    finally:
        for shard in shards:
            shard.stop()


def test_a_server_that_is_down_is_reported_and_fails_the_command(server):
    dead = f"valkey://user:s3cret@127.0.0.1:{free_port()}/0"
    with override_settings(INSTALLED_APPS=APPS, CACHES={
            "default": {"BACKEND": "django_valkey_fast.cache.ValkeyCache",
                        "LOCATION": [server.url, dead],
                        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5}}}):
        out = io.StringIO()
        with pytest.raises(CommandError, match="1 server"):
            call_command("valkey", "ping", "--json", stdout=out)
        report = json.loads(out.getvalue())
        up, down = report["aliases"]["default"]
        assert up["ok"] and not down["ok"] and "Error" in down["error"]
        assert "s3cret" not in out.getvalue() and ":***@" in down["server"]


def test_an_unknown_alias_is_a_clear_error(one):
    with pytest.raises(CommandError, match="does not use a django-valkey-fast backend"):
        run("ping", "--alias", "other")


def test_async_valkey_cache(server):
    with override_settings(INSTALLED_APPS=APPS, CACHES={
            "default": {"BACKEND": "django_valkey_fast.async_cache.cache.AsyncValkeyCache",
                        "LOCATION": server.url, "KEY_PREFIX": f"acmd{time.monotonic_ns()}"}}):
        assert as_json("ping")["failed"] == 0
        cache = caches["default"]

        async def fill():
            await cache.set_many({"async1": 1, "async2": 2})

        import asyncio

        asyncio.run(fill())
        assert sorted(as_json("keys", "async*")["keys"]) == ["async1", "async2"]
        assert as_json("delete-pattern", "async*", "--yes")["deleted"] == 2


def test_every_node_of_a_cluster():
    cluster = Cluster()
    try:
        with override_settings(INSTALLED_APPS=APPS, CACHES={
                "default": {"BACKEND": "django_valkey_fast.cluster_cache.cache.ClusterValkeyCache",
                            "LOCATION": cluster.url, "KEY_PREFIX": "cluster-cmd"}}):
            report = as_json("info")
            rows = report["aliases"]["default"]
            assert len(rows) == 6 and report["failed"] == 0
            assert sorted(row["role"] for row in rows) == ["master"] * 3 + ["slave"] * 3
            cache = caches["default"]
            cache.set_many({f"spread{i}": i for i in range(20)})
            assert len(as_json("keys", "spread*", "--limit", "0")["keys"]) == 20
            assert as_json("delete-pattern", "spread*", "--yes")["deleted"] == 20
    finally:
        cluster.stop()


def test_sentinel_aliases_reach_the_servers_sentinel_names(doomed_topology):
    """Sync and async Sentinel aliases: LOCATION names the service; info reaches the
    primary and the replica Sentinel points to."""
    primary, replica, sentinel = doomed_topology
    caches_settings = sentinel_caches(sentinel)
    with override_settings(INSTALLED_APPS=APPS, CACHES=caches_settings):
        report = as_json("info")
        assert report["failed"] == 0
        for alias in ("default", "async"):
            assert [row["role"] for row in report["aliases"][alias]] == ["master", "slave"]
