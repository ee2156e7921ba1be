"""Valkey Cluster routing, with no I/O: the slot map and the plan that follows it.

``ClusterRouter`` knows which node serves each of the 16384 slots (from
``CLUSTER SLOTS``) and splits commands by slot the way ``ShardRouter`` splits them by
server (multi-key commands per slot, one pipeline per node; KEYS/SCAN/FLUSHDB on every
primary). ``run_on_cluster`` is a plan the sync and the async cluster channels drive:
it yields ``("run", {node: [commands]})`` and ``("sleep", seconds)`` steps, follows
MOVED and ASK redirections, and after a node fails refreshes the slot map from any
node that answers, until the cluster has failed over.
"""

from __future__ import annotations

from valkey.exceptions import (
    AskError, ClusterDownError, ConnectionError, MovedError, TimeoutError, TryAgainError,
)

from django_valkey_fast._slots import SLOTS, key_slot
from django_valkey_fast.sharding import ShardRouter

__all__ = ["ClusterRouter", "run_on_cluster"]

ATTEMPTS = 12  # with the backoff below, about 12 s: a failover's worth


def _address(host, port):
    host = host.decode() if isinstance(host, bytes) else host
    return host, int(port)


class ClusterRouter(ShardRouter):
    """The slot map of one cluster; places are slots."""

    def __init__(self, seeds):
        self.nodes = []
        self.seeds = [tuple(seed) for seed in seeds]
        self.slots: list = [None] * SLOTS
        self.primaries: list = []
        self.ready = False

    def shard_for(self, key) -> int:
        """The slot of ``key``."""
        return key_slot(key)

    def node_of(self, slot: int):
        """The address of the primary serving ``slot``."""
        node = self.slots[slot]
        if node is None:
            raise ClusterDownError(f"slot {slot} is not served by any known node")
        return node

    def every_place(self) -> list:
        """The first slot of each primary, in a stable order."""
        firsts = {}
        for slot, node in enumerate(self.slots):
            if node is not None and node not in firsts:
                firsts[node] = slot
        return [firsts[node] for node in sorted(firsts)]

    def candidates(self) -> list:
        """Nodes to ask for the slot map: known primaries first, then the seeds."""
        seen = []
        for node in self.primaries + self.seeds:
            if node not in seen:
                seen.append(node)
        return seen

    def apply_slots(self, reply) -> None:
        """Take a ``CLUSTER SLOTS`` reply as the new slot map."""
        slots = [None] * SLOTS
        primaries = set()
        for entry in reply:
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            node = _address(primary[0], primary[1])
            primaries.add(node)
            slots[start:end + 1] = [node] * (end - start + 1)
        self.slots, self.primaries, self.ready = slots, sorted(primaries), True

    def moved(self, error: MovedError) -> None:
        """Record a MOVED redirection."""
        node = _address(error.host, error.port)
        self.slots[error.slot_id] = node
        if node not in self.primaries:
            self.primaries.append(node)


def run_on_cluster(router: ClusterRouter, commands, pipeline: bool):
    """Plan: run a command (or a pipeline) on the cluster; return its reply (or replies)."""
    error = None
    for attempt in range(ATTEMPTS):
        if not router.ready or error is not None:
            yield from _refresh(router)
        try:
            per_node, assemble = router.plan_pipeline(commands, group=router.node_of)
        except ClusterDownError as down:
            error = down
            yield ("sleep", 0.1 * (attempt + 1))
            continue
        try:
            replies = yield ("run", per_node)
        except (ConnectionError, TimeoutError) as failure:
            error = failure
            yield ("sleep", 0.1 * (attempt + 1))
            continue
        redirect = next((reply for node_replies in replies.values() for reply in node_replies
                         if isinstance(reply, (AskError, TryAgainError, ClusterDownError))), None)
        if redirect is None:
            answers = assemble(replies)
            return answers if pipeline else answers[0]
        if isinstance(redirect, MovedError):
            router.moved(redirect)
            error = None
            continue
        if isinstance(redirect, AskError) and not pipeline and len(per_node) == 1:
            # A slot being migrated: ask the target node, once.
            (command,) = next(iter(per_node.values()))
            asked = yield ("run", {_address(redirect.host, redirect.port): [("ASKING",), command]})
            return next(iter(asked.values()))[1]
        error = redirect
        yield ("sleep", 0.1 * (attempt + 1))
    raise error


def _refresh(router: ClusterRouter):
    """Plan: load the slot map from the first node that answers."""
    last = None
    for node in router.candidates():
        try:
            replies = yield ("run", {node: [("CLUSTER", "SLOTS")]})
        except (ConnectionError, TimeoutError) as failure:
            last = failure
            continue
        reply = replies[node][0]
        if isinstance(reply, Exception) or not reply:
            last = reply if isinstance(reply, Exception) else ClusterDownError("no slots")
            continue
        router.apply_slots(reply)
        return
    if not router.ready:
        raise last or ConnectionError("no cluster node answered")
