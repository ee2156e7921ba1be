"""``manage.py valkey``: look after the caches of this package from a terminal or a
script (add ``"django_valkey_fast"`` to INSTALLED_APPS).

    manage.py valkey ping [--alias A]            every server of every topology, with latency
    manage.py valkey info [--alias A]            version, role, memory, clients, the cache's keys
    manage.py valkey stats [--alias A]           the servers' hit ratio, evictions, tracking
    manage.py valkey keys PATTERN [--limit N]    the cache's keys matching PATTERN (streamed)
    manage.py valkey delete-pattern PATTERN [--yes]
    manage.py valkey clear [--yes]

Every subcommand takes ``--json`` (one JSON document on stdout, for scripts). ``ping``,
``info`` and ``stats`` visit every alias of this package's backends unless ``--alias``
names one, and every server of each (the primary and the replicas, each shard, what
Sentinel points to, every Cluster node); the others act on ``--alias`` (``default``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError

from django_valkey_fast.checks import our_aliases

__all__ = ["Command"]


def _settle(value):
    """``value``, or what it gives when awaited (AsyncValkeyCache's methods)."""
    if inspect.isawaitable(value):
        async def wait():
            return await value

        return asyncio.run(wait())
    return value


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Command(BaseCommand):
    """``manage.py valkey SUBCOMMAND``: ping, info, stats, keys, delete-pattern, clear."""

    help = "Ping, inspect and clean the caches of django-valkey-fast."

    def add_arguments(self, parser) -> None:
        """The subcommands and their options."""
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        for name, text in (("ping", "every server of every alias, with its latency"),
                           ("info", "version, role, memory, clients and keys per server"),
                           ("stats", "each server's hit ratio, evictions and tracking")):
            sub = subcommands.add_parser(name, help=text)
            sub.add_argument("--alias", help="one cache alias (default: every alias)")
            sub.add_argument("--json", action="store_true", help="print JSON")
        keys = subcommands.add_parser("keys", help="the cache's keys matching a pattern")
        keys.add_argument("pattern")
        keys.add_argument("--limit", type=int, default=100,
                          help="print at most this many (default 100; 0: all)")
        deleting = subcommands.add_parser("delete-pattern",
                                          help="delete the cache's keys matching a pattern")
        deleting.add_argument("pattern")
        clearing = subcommands.add_parser("clear", help="clear the cache (as cache.clear())")
        for sub in (keys, deleting, clearing):
            sub.add_argument("--alias", default="default", help="the cache alias (default)")
            sub.add_argument("--json", action="store_true", help="print JSON")
        for sub in (keys, deleting):
            sub.add_argument("--version", type=int, dest="key_version", default=None,
                             help="the keys' version (default: the cache's)")
        for sub in (deleting, clearing):
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, **options) -> None:
        """Run the subcommand; print JSON with ``--json``; fail if a server did not answer."""
        subcommand = options["subcommand"]
        result = getattr(self, "_" + subcommand.replace("-", "_"))(options)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, default=str))
        failed = result.get("failed", 0) if isinstance(result, dict) else 0
        if failed:
            raise CommandError(f"{failed} server(s) did not answer")

    # -- which caches -------------------------------------------------------------------

    def _aliases(self, options) -> list:
        ours = our_aliases()
        alias = options.get("alias")
        if alias is None:
            if not ours:
                raise CommandError("no cache alias uses a django-valkey-fast backend")
            return sorted(ours)
        if alias not in ours:
            raise CommandError(f"cache alias {alias!r} does not use a django-valkey-fast "
                               f"backend (those that do: {', '.join(sorted(ours)) or 'none'})")
        return [alias]

    def _servers(self, alias):
        return caches[alias].client.server_connections()

    def _each_server(self, options, visit) -> dict:
        """``visit(raw client)`` on every server of the chosen aliases; failures are
        reported per server, not raised."""
        report: dict = {"aliases": {}, "failed": 0}
        for alias in self._aliases(options):
            rows = report["aliases"][alias] = []
            try:
                servers = self._servers(alias)
            except Exception as error:  # noqa: BLE001 - reported per alias
                rows.append({"server": "(topology)", "ok": False, "error": str(error)})
                report["failed"] += 1
                continue
            for address, raw in servers:
                started = time.perf_counter()
                try:
                    row = {"server": address, "ok": True, **visit(raw)}
                    row["ms"] = round((time.perf_counter() - started) * 1000, 3)
                except Exception as error:  # noqa: BLE001 - reported per server
                    row = {"server": address, "ok": False,
                           "error": f"{type(error).__name__}: {error}"}
                    report["failed"] += 1
                rows.append(row)
        return report

    def _table(self, report: dict, columns: list, options) -> None:
        if options["json"]:
            return
        for alias, rows in report["aliases"].items():
            self.stdout.write(f"{alias}:")
            for row in rows:
                if not row["ok"]:
                    self.stdout.write(self.style.ERROR(f"  {row['server']}  DOWN  {row['error']}"))
                    continue
                cells = "  ".join(f"{name}={row[name]}" for name in columns if name in row)
                self.stdout.write(f"  {row['server']}  {cells}")

    # -- subcommands --------------------------------------------------------------------

    def _ping(self, options) -> dict:
        report = self._each_server(options, lambda raw: {"pong": bool(raw.ping())})
        self._table(report, ["ms"], options)
        return report

    def _info(self, options) -> dict:
        def visit(raw):
            info = raw.info()
            version = info.get("valkey_version") or info.get("redis_version")
            server = "Valkey" if "valkey_version" in info else "Redis"
            database = f"db{raw.connection_pool.connection_kwargs.get('db', 0)}"
            keyspace = info.get(database, {})
            return {"version": f"{server} {version}", "role": info.get("role"),
                    "used_memory": info.get("used_memory_human"),
                    "maxmemory_policy": info.get("maxmemory_policy"),
                    "clients": info.get("connected_clients"),
                    "keys": keyspace.get("keys", 0) if isinstance(keyspace, dict) else 0}

        report = self._each_server(options, visit)
        self._table(report, ["version", "role", "used_memory", "clients", "keys"], options)
        return report

    def _stats(self, options) -> dict:
        def visit(raw):
            info = raw.info()
            hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
            return {"keyspace_hits": hits, "keyspace_misses": misses,
                    "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
                    "evicted_keys": info.get("evicted_keys", 0),
                    "expired_keys": info.get("expired_keys", 0),
                    "tracking_clients": info.get("tracking_clients", 0),
                    "tracked_keys": info.get("tracking_total_keys", 0)}

        report = self._each_server(options, visit)
        self._table(report, ["hit_ratio", "keyspace_hits", "keyspace_misses", "evicted_keys",
                             "tracking_clients", "tracked_keys"], options)
        return report

    def _keys(self, options) -> dict:
        (alias,) = self._aliases(options)
        cache: Any = caches[alias]
        limit = options["limit"]
        # (one key more than shown: whether there are more than --limit)
        found = _settle(self._collect(cache.iter_keys(options["pattern"],
                                                      version=options["key_version"]),
                                      limit + 1 if limit else 0))
        truncated = bool(limit and len(found) > limit)
        if truncated:
            found = found[:limit]
        if not options["json"]:
            for key in found:
                self.stdout.write(_text(key))
            if truncated:
                self.stderr.write(f"(stopped at --limit {limit})")
        return {"alias": alias, "keys": [_text(key) for key in found], "truncated": truncated}

    @staticmethod
    def _collect(keys, limit: int):
        """The first ``limit`` keys of an iterator (or async iterator) of keys."""
        if hasattr(keys, "__aiter__"):
            async def take():
                found = []
                async for key in keys:
                    found.append(key)
                    if limit and len(found) >= limit:
                        break
                return found

            return take()
        found = []
        for key in keys:
            found.append(key)
            if limit and len(found) >= limit:
                break
        return found

    def _confirmed(self, options, question: str) -> bool:
        if options["yes"]:
            return True
        try:
            answer = input(f"{question} [y/N] ")
        except EOFError:  # (no terminal: scripts say --yes)
            return False
        return answer.strip().lower() in ("y", "yes")

    def _delete_pattern(self, options) -> dict:
        (alias,) = self._aliases(options)
        pattern = options["pattern"]
        if not self._confirmed(options, f"Delete every key matching {pattern!r} from the "
                                        f"cache {alias!r}?"):
            raise CommandError("nothing deleted")
        cache: Any = caches[alias]
        deleted = _settle(cache.delete_pattern(pattern, version=options["key_version"]))
        if not options["json"]:
            self.stdout.write(f"deleted {deleted} key(s) matching {pattern!r} from {alias!r}")
        return {"alias": alias, "pattern": pattern, "deleted": deleted}

    def _clear(self, options) -> dict:
        (alias,) = self._aliases(options)
        scope = settings.CACHES[alias].get("OPTIONS", {}).get("CLEAR_SCOPE", "database")
        what = ("every key of its prefix" if scope == "prefix"
                else "EVERY key of its database, other applications' included")
        if not self._confirmed(options, f"Clear the cache {alias!r} ({what})?"):
            raise CommandError("nothing cleared")
        cache: Any = caches[alias]
        _settle(cache.clear())
        if not options["json"]:
            self.stdout.write(f"cleared {alias!r}")
        return {"alias": alias, "cleared": True, "scope": scope}
