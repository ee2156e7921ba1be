"""Valkey Cluster routing, with no I/O: the slot map and the plan that follows it.

``ClusterRouter`` knows which node serves each of the 16384 slots (from
``CLUSTER SLOTS``) and splits commands by slot the way ``ShardRouter`` splits them by
server (multi-key commands per slot, one pipeline per node; KEYS/SCAN/FLUSHDB on every
primary). ``run_on_cluster`` is a plan the sync and the async cluster channels drive
with the plan drivers: it yields ``Fanout`` and ``Pause`` steps, follows
MOVED and ASK redirections (ASK per command, with ASKING), and after a node fails
refreshes the slot map from any node that answers, until the cluster has failed
over, without ever running a part of a write twice.
"""

from __future__ import annotations

import itertools

from valkey.exceptions import (
    AskError, ClusterDownError, ConnectionError, MasterDownError, MovedError, TryAgainError,
)

from django_valkey_fast._slots import (
    SLOTS, group_parts, key_slot, place_values, split_by_node, take_replies,
)
from django_valkey_fast.exceptions import DecodeError
from django_valkey_fast.operations import Fanout, Pause
from django_valkey_fast.retry import may_resend, reads_only
from django_valkey_fast.sharding import Router

__all__ = ["ABSENT", "ClusterRouter", "DecodedValues", "cluster_plan", "pipeline_plan",
           "read_many_on_cluster", "refresh_slots", "run_on_cluster"]

ATTEMPTS = 12  # with the backoff below, about 12 s: a failover's worth
_is_exception = Exception.__instancecheck__


def _address(host, port):
    host = host.decode() if isinstance(host, bytes) else host
    return host, int(port)


class ClusterRouter(Router):
    """The slot map of one cluster; places are slots.

    With ``read_from_replicas`` (valkey-py's option of the same name), read-only
    commands follow ``read_slots()``: tables that give each slot, call after call, its
    primary and each of its replicas in turn (valkey-py's round robin)."""

    def __init__(self, seeds, read_from_replicas: bool = False):
        self.nodes: list = []
        self.seeds = [tuple(seed) for seed in seeds]
        self.slots: list = [None] * SLOTS
        self.primaries: list = []
        self.ready = False
        self.read_from_replicas = read_from_replicas
        self.read_tables: list = [self.slots]
        self._turn = itertools.count()
        # Called (no argument) after the map changed a slot's node, before the plan that
        # learned it goes on: the client-side cache forgets what it kept per node.
        self.on_change = None

    # The slot of a key (the compiled function itself: no Python frame per key).
    shard_for = staticmethod(key_slot)

    def node_of(self, slot: int):
        """The address of the primary serving ``slot``."""
        node = self.slots[slot]
        if node is None:
            raise ClusterDownError(f"slot {slot} is not served by any known node")
        return node

    def first_slots(self) -> dict:
        """``{primary address: the first slot it serves}``."""
        firsts = {}
        for slot, node in enumerate(self.slots):
            if node is not None and node not in firsts:
                firsts[node] = slot
        return firsts

    def every_place(self) -> list:
        """The first slot of each primary, in a stable order."""
        firsts = self.first_slots()
        return [firsts[node] for node in sorted(firsts)]

    def candidates(self) -> list:
        """Nodes to ask for the slot map: known primaries first, then the seeds."""
        seen = []
        for node in self.primaries + self.seeds:
            if node not in seen:
                seen.append(node)
        return seen

    def read_slots(self) -> list:
        """The slot map a read-only command follows (see the class)."""
        tables = self.read_tables
        if len(tables) == 1:
            return tables[0]
        return tables[next(self._turn) % len(tables)]

    def replica_failed(self, node) -> None:
        """A read on ``node`` failed: until the next refresh, its slots' reads go to
        their primaries instead (a refresh that still lists it tries it again)."""
        slots = self.slots
        self.read_tables = [self.read_tables[0]] + [
            [primary if each == node else each for each, primary in zip(table, slots)]
            for table in self.read_tables[1:]]

    def apply_slots(self, reply) -> None:
        """Take a ``CLUSTER SLOTS`` reply as the new slot map."""
        slots = [None] * SLOTS
        primaries = set()
        shards = []
        for entry in reply:
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            node = _address(primary[0], primary[1])
            primaries.add(node)
            slots[start:end + 1] = [node] * (end - start + 1)
            shards.append((start, end, [node] + [_address(replica[0], replica[1])
                                                 for replica in entry[3:]]))
        read_tables = [slots]
        if self.read_from_replicas:
            width = max((len(nodes) for _, _, nodes in shards), default=1)
            read_tables = [slots] + [[None] * SLOTS for _ in range(width - 1)]
            for start, end, nodes in shards:
                for turn in range(1, width):
                    read_tables[turn][start:end + 1] = [nodes[turn % len(nodes)]] * (
                        end - start + 1)
        changed = self.ready and slots != self.slots
        self.slots, self.primaries, self.ready = slots, sorted(primaries), True
        self.read_tables = read_tables
        if changed and self.on_change is not None:
            self.on_change()

    def moved(self, error: MovedError) -> None:
        """Record a MOVED redirection."""
        node = _address(error.host, error.port)
        changed = self.slots[error.slot_id] != node
        for table in self.read_tables:  # (its replicas are learned at the next refresh)
            table[error.slot_id] = node
        self.slots[error.slot_id] = node
        if node not in self.primaries:
            self.primaries.append(node)
        if changed and self.on_change is not None:
            self.on_change()


def run_on_cluster(router: ClusterRouter, commands, pipeline: bool, replicas: bool = False):
    """Plan: run a command (or a pipeline) on the cluster; return its reply (or replies).

    Each command is split by slot into parts, and each part runs at most once: a part
    is sent again only when it provably did not run (MOVED, ASK, TRYAGAIN and
    CLUSTERDOWN replies; a node that was never reached) or only reads. So when one
    node fails, the parts that other nodes already ran are kept, not run again; a
    written write whose node failed raises. The ``Fanout`` step's answer maps each node
    to its replies, or to the ``ConnectionError``/``TimeoutError`` its connection met.
    With ``replicas`` (read-only commands, ``read_from_replicas``), parts go where
    ``router.read_slots()`` says until a node fails; then to the primaries.
    """
    if not router.ready:
        yield from refresh_slots(router)
    splits = [router.split(command) for command in commands]
    # Every command's parts, numbered in order: part k is (slot, command). ``todo``
    # holds the parts still to run; their replies go to ``replies_of``.
    parts = (splits[0][0] if len(splits) == 1
             else [part for command_parts, _ in splits for part in command_parts])
    todo = dict(enumerate(parts))
    replies_of: list = [None] * len(parts)
    asking: dict = {}  # part -> the node an ASK redirection named, for the next attempt
    error: BaseException | None = None
    for attempt in range(ATTEMPTS):
        if error is not None:
            yield Pause(0.1 * (attempt + 1))
            yield from refresh_slots(router)
        try:
            per_node = group_parts(router.read_slots() if replicas else router.slots,
                                   todo, asking)
        except LookupError as unserved:
            if type(unserved) is not LookupError:  # (group_parts' own: a slot nobody serves)
                raise
            error = ClusterDownError(f"slot {unserved.args[0]} is not served by any known node")
            continue
        results = yield Fanout({node: sent for node, (_, sent) in per_node.items()})
        error, asking = None, {}
        for node, (numbers, sent) in per_node.items():
            replies = results[node]
            if isinstance(replies, BaseException):  # the node's connection failed
                if not may_resend(replies, [command for number, command in zip(numbers, sent)
                                            if number is not None]):
                    raise replies
                if replicas and node not in router.primaries:
                    router.replica_failed(node)  # (its reads go to the primaries now:
                    continue                     # no pause, no refresh for a replica)
                error = replies
                continue
            for number, reply in take_replies(numbers, replies, replies_of, todo):
                if isinstance(reply, MovedError):
                    router.moved(reply)
                elif isinstance(reply, AskError):
                    asking[number] = _address(reply.host, reply.port)
                elif replicas and isinstance(reply, MasterDownError) \
                        and node not in router.primaries:
                    # A replica that lost its primary and serves no stale data: its
                    # reads go to the primaries, at once.
                    router.replica_failed(node)
                elif isinstance(reply, (TryAgainError, ClusterDownError)):
                    error = reply
                else:  # an error about the command itself (WRONGTYPE...): its reply
                    replies_of[number] = reply
                    del todo[number]
        if not todo:
            answers, first = [], 0
            for command_parts, merge in splits:
                last = first + len(command_parts)
                answers.append(merge(replies_of[first:last]))
                first = last
            return answers if pipeline else answers[0]
    raise error or ClusterDownError("the cluster kept redirecting the command")


def cluster_plan(router: ClusterRouter, command, decode=None):
    """The plan that runs one command on the cluster: ``read_many_on_cluster`` for an
    MGET of several keys (its values decoded by ``decode`` when given), ``run_on_cluster``
    for anything else; read-only commands on replicas too with ``read_from_replicas``."""
    replicas = router.read_from_replicas and reads_only([command])
    if command[0] == "MGET" and len(command) > 2:
        return read_many_on_cluster(router, command, replicas, decode)
    return run_on_cluster(router, [command], False, replicas)


def pipeline_plan(router: ClusterRouter, commands):
    """The plan that runs a pipeline on the cluster (on replicas too when every command
    only reads and ``read_from_replicas`` is on)."""
    return run_on_cluster(router, commands, True,
                          router.read_from_replicas and reads_only(commands))


class DecodedValues(list):
    """An MGET's values decoded by :func:`read_many_on_cluster` as each node answered,
    :data:`ABSENT` for a key that does not exist (a stored None decodes to None)."""

    __slots__ = ()


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # in DecodedValues: no such key


def read_many_on_cluster(router: ClusterRouter, command, replicas: bool = False,
                         decode=None):
    """Plan: an MGET whose keys span slots (``get_many``), the common case made cheap:
    each slot's MGET goes to its node, every node at once, and each reply is put at
    its keys' places directly. Only the parts that come back redirected (MOVED, ASK),
    refused (TRYAGAIN, CLUSTERDOWN) or without a reply (their node failed) run again,
    through :func:`run_on_cluster` and its rules; reading them twice is safe.

    With ``decode`` (``decode(value, key)``), the answer is :class:`DecodedValues` when
    the keys were read node by node: each node's values decoded when the driver hands
    over its replies (the sync driver: while the next nodes' replies are still on
    their way); a value that does not decode is raised once every node's replies are
    read (the first found). (Keys in one slot, or a slot no known node serves, go
    whole through the general plan: their answer is the raw MGET list.)"""
    if not router.ready:
        yield from refresh_slots(router)
    try:  # (a slot's one key: GET)
        per_node, spots = split_by_node(
            command, router.read_slots() if replicas else router.slots, "GET")
    except LookupError:  # a slot no known node serves: the general plan refreshes
        per_node = None
    if per_node is None:  # (or every key in one slot: the command goes whole)
        return (yield from run_on_cluster(router, [command], False))
    count = len(command) - 1
    values = [None if decode is None else ABSENT] * count
    placed: dict = {}  # node -> its parts to run again, for the nodes already placed
    undecodable: list = []

    def received(node, replies):
        try:
            placed[node] = place_values(values, spots, per_node[node][0], replies, decode,
                                        command)
        except DecodeError as error:  # (a corrupt value: raised once every reply is read)
            placed[node] = ()
            undecodable.append(error)

    results = yield Fanout({node: sent for node, (_, sent) in per_node.items()}, received)
    again: list = []
    for node, (indices, sent) in per_node.items():
        replies = results[node]
        if isinstance(replies, BaseException):  # the node's connection failed
            if not may_resend(replies, sent):  # (a timeout is not waited out twice)
                raise replies
            if replicas and node not in router.primaries:
                router.replica_failed(node)  # (read again below, from the primaries)
            again.extend(indices)
        else:
            for error in filter(_is_exception, replies):  # (the scan in C)
                if isinstance(error, MovedError):
                    router.moved(error)  # (so the parts run again where they belong)
                elif replicas and isinstance(error, MasterDownError) \
                        and node not in router.primaries:
                    router.replica_failed(node)  # (its parts are read below, from primaries)
            found = placed.get(node)
            if found is None:  # (a driver that did not call received)
                found = place_values(values, spots, indices, replies, decode, command)
            again.extend(found)
    if undecodable:
        raise undecodable[0]
    if again:
        positions = [spot for index in again for spot in spots[index]]
        retried = yield from run_on_cluster(
            router, [("MGET", *[command[spot] for spot in positions])], False)
        if isinstance(retried, Exception):
            return retried
        for spot, value in zip(positions, retried):
            if decode is None:
                values[spot - 1] = value
            elif value is not None:
                values[spot - 1] = decode(value, command[spot])
    return values if decode is None else DecodedValues(values)


def refresh_slots(router: ClusterRouter):
    """Plan: load the slot map from the first node that answers."""
    last = None
    for node in router.candidates():
        replies = yield Fanout({node: [("CLUSTER", "SLOTS")]})
        reply = replies[node]
        if not isinstance(reply, BaseException):
            reply = reply[0]
        if isinstance(reply, BaseException) or not reply:
            last = reply if isinstance(reply, BaseException) else ClusterDownError("no slots")
            continue
        router.apply_slots(reply)
        return
    if not router.ready:
        raise last or ConnectionError("no cluster node answered")
