"""Client-side sharding: which shard holds a key, and how a command splits across shards.

``HashRing`` places keys exactly as django-valkey's ``hash_ring.HashRing`` does (128
points per node on a SHA-256 ring; a ``{hash tag}`` in the key decides its shard), so
a fleet can switch packages without moving keys. ``Router.split`` turns one
command into per-shard commands plus a function that merges their replies, with no
I/O: the sync and the async sharded channels (``routed_channel.py``) only run them.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re

from django_valkey_fast._slots import merge_values, split_keys

__all__ = ["CrossShardError", "HashRing", "Router", "ShardRouter"]


class CrossShardError(ValueError):
    """A command that needs its keys on one shard got keys on several."""


class HashRing:
    """A consistent-hash ring of node names (django-valkey's placement)."""

    def __init__(self, nodes=(), replicas: int = 128) -> None:
        self.replicas = replicas
        self.nodes: list = []
        self.ring: dict = {}
        self.sorted_keys: list = []
        for node in nodes:
            self.add_node(node)

    def add_node(self, node: str) -> None:
        """Put ``node`` on the ring."""
        self.nodes.append(node)
        for x in range(self.replicas):
            point = hashlib.sha256(f"{node}:{x}".encode()).hexdigest()
            self.ring[point] = node
            self.sorted_keys.append(point)
        self.sorted_keys.sort()

    def remove_node(self, node: str) -> None:
        """Take ``node`` off the ring (its keys move to the next points)."""
        self.nodes.remove(node)
        for x in range(self.replicas):
            point = hashlib.sha256(f"{node}:{x}".encode()).hexdigest()
            del self.ring[point]
            self.sorted_keys.remove(point)

    def get_node(self, key: str):
        """The node that holds ``key`` (None on an empty ring)."""
        return self.get_node_pos(key)[0]

    def get_node_pos(self, key: str):
        """``(node, position on the ring)`` for ``key``; ``(None, None)`` if empty."""
        if not self.ring:
            return None, None
        point = hashlib.sha256(key.encode()).hexdigest()
        position = min(bisect.bisect(self.sorted_keys, point) - 1,
                       self.replicas * len(self.nodes) - 1)
        return self.ring[self.sorted_keys[position]], position

    def iter_nodes(self, key: str):
        """Yield ``(point, node)`` from ``key``'s position to the end of the ring."""
        if not self.ring:
            yield None, None
            return
        _, position = self.get_node_pos(key)
        for point in self.sorted_keys[position:]:
            yield point, self.ring[point]

    __call__ = get_node


_hash_tag = re.compile(r".*\{(.*)\}.*", re.I)

# Commands whose key is not the first argument.
_KEY_AT = {"EVALSHA": 3, "EVAL": 3}
# Commands over many keys: split per shard, then merged.
_MANY_KEYS = {"MGET", "DEL", "UNLINK", "EXISTS", "TOUCH"}
# Commands over several keys that must share a shard.
_SAME_SHARD = {"RENAME", "SMOVE", "SDIFF", "SDIFFSTORE", "SINTER", "SINTERSTORE", "SUNION",
               "SUNIONSTORE"}


def _text(key) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


class Router:
    """How commands split across the places that hold keys, with no I/O: a place is
    a shard index (:class:`ShardRouter`) or a cluster slot (``cluster.ClusterRouter``).
    A subclass says where a key lives (``shard_for``) and which places cover every
    server (``every_place``); the splitting and merging is shared."""

    def shard_for(self, key) -> int:
        """The place that holds ``key``."""
        raise NotImplementedError

    def every_place(self) -> list:
        """One place per server, for commands that run everywhere (KEYS, SCAN, FLUSHDB)."""
        raise NotImplementedError

    def split(self, command):
        """``([(shard, command), ...], merge)``: the per-shard commands and how to
        combine their replies (in that order) into the reply of ``command``."""
        name = command[0].upper() if isinstance(command[0], str) else command[0]
        if name in _EVERY_SHARD:
            return [(place, command) for place in self.every_place()], _EVERY_SHARD[name]
        if name == "SCAN":
            return self._split_scan(command)
        if name in _MANY_KEYS and len(command) > 2:
            return self._split_keys(command, name)
        if name == "MSET":
            return self._split_mset(command)
        if name in _SAME_SHARD:
            keys = command[1:3] if name in ("SMOVE", "RENAME") else command[1:]
            shards = {self.shard_for(key) for key in keys}
            if len(shards) > 1:
                raise CrossShardError(f"{name} needs its keys on one shard: use a {{hash tag}}")
            return [(shards.pop(), command)], _only
        return [(self.shard_for(command[_KEY_AT.get(name, 1)]), command)], _only

    def _split_scan(self, command):
        # One cursor over every server in turn: cursor = server cursor * servers + server.
        places = self.every_place()
        count = len(places)
        turn, cursor = int(command[1]) % count, int(command[1]) // count

        def merge(replies):
            next_cursor, keys = replies[0]
            next_cursor = int(next_cursor)
            if next_cursor:
                return next_cursor * count + turn, keys
            return (turn + 1 if turn + 1 < count else 0), keys

        return [(places[turn], (command[0], cursor, *command[2:]))], merge

    def plan_pipeline(self, commands, group=None):
        """``(per_group, assemble)``: each server's share of a pipeline, and how to turn
        their replies (``{group: [replies]}``) back into the pipeline's replies.

        Parts go to the place ``split`` gave them; ``group`` maps a place to the
        connection that serves it (a cluster node serves many slots)."""
        splits = [self.split(command) for command in commands]
        per_shard: dict = {}
        slots: dict = {}
        for index, (parts, _) in enumerate(splits):
            for part, (place, command) in enumerate(parts):
                shard = place if group is None else group(place)
                per_shard.setdefault(shard, []).append(command)
                slots.setdefault(shard, []).append((index, part))

        def assemble(replies_by_shard):
            replies = [[None] * len(parts) for parts, _ in splits]
            for shard, shard_replies in replies_by_shard.items():
                for (index, part), reply in zip(slots[shard], shard_replies):
                    replies[index][part] = reply
            return [merge(reply) for (_, merge), reply in zip(splits, replies)]

        return per_shard, assemble

    def _split_keys(self, command, name):
        parts, spots = split_keys(command, self.shard_for)
        if spots is None:
            return parts, _only
        if name == "MGET":
            return parts, functools.partial(merge_values, spots, len(command) - 1)
        return parts, sum

    def _split_mset(self, command):
        pairs: dict = {}
        for i in range(1, len(command), 2):
            pairs.setdefault(self.shard_for(command[i]), []).extend(command[i:i + 2])
        return [(shard, (command[0], *args)) for shard, args in pairs.items()], _only


class ShardRouter(Router):
    """Client-side sharding: places are the indexes of the LOCATION servers, and a key
    lives where django-valkey's hash ring puts it."""

    def __init__(self, nodes):
        self.nodes = list(nodes)
        self.ring = HashRing(self.nodes)
        self._index = {node: i for i, node in enumerate(self.nodes)}

    def node_for(self, key) -> str:
        """The node (LOCATION entry) that holds ``key``."""
        key = _text(key)
        match = _hash_tag.match(key)
        if match is not None and match.groups():
            key = match.groups()[0]
        return self.ring.get_node(key)

    def shard_for(self, key) -> int:
        """The index of the shard that holds ``key``."""
        return self._index[self.node_for(key)]

    def every_place(self) -> list:
        """Every shard."""
        return list(range(len(self.nodes)))


def _only(replies):
    return replies[0]


def _concatenate(replies):
    return [item for reply in replies for item in reply]


# Commands without a key: run on every shard.
_EVERY_SHARD = {"FLUSHDB": all, "FLUSHALL": all, "KEYS": _concatenate, "DBSIZE": sum,
                "PING": all}
