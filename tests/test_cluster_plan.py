"""The cluster plan, sans-IO: replies and failures are fed straight into
``run_on_cluster``; no server. Invariant: AT-MOST-ONCE, per node: when one node's
connection fails, the parts other nodes already ran are never sent again, and a
written write whose node failed raises instead of being resent."""

from __future__ import annotations

import pytest
from valkey.exceptions import AskError, ConnectionError, MovedError, TimeoutError

from django_valkey_fast._slots import key_slot
from django_valkey_fast.cluster import ClusterRouter, run_on_cluster
from django_valkey_fast.exceptions import CommandNotSent

A, B, C = ("127.0.0.1", 7000), ("127.0.0.1", 7001), ("127.0.0.1", 7002)
SLOTS = [[0, 5460, [b"127.0.0.1", 7000]], [5461, 10922, [b"127.0.0.1", 7001]],
         [10923, 16383, [b"127.0.0.1", 7002]]]


def router():
    ready = ClusterRouter([A])
    ready.apply_slots(SLOTS)
    return ready


def keys_on_every_node():
    """Three keys, one on each node (A, B, C)."""
    found = {}
    for i in range(1000):
        key = f"k{i}"
        slot = key_slot(key)
        node = A if slot <= 5460 else B if slot <= 10922 else C
        found.setdefault(node, key)
    return found[A], found[B], found[C]


class Cluster:
    """Runs the plan's steps: ``fail`` maps a node to the errors its next pipelines
    raise (one per call); every command a node runs is recorded."""

    def __init__(self, fail=None, replies=None):
        self.ran: list = []
        self.fail = {node: list(errors) for node, errors in (fail or {}).items()}
        self.replies = replies or {}

    def drive(self, plan):
        try:
            step = next(plan)
            while True:
                if step[0] == "sleep":
                    step = plan.send(None)
                    continue
                results = {}
                for node, commands in step[1].items():
                    if self.fail.get(node):
                        error = self.fail[node].pop(0)
                        if not isinstance(error, CommandNotSent):
                            self.ran.extend((node, c) for c in commands)  # written
                        results[node] = error
                        continue
                    if commands == [("CLUSTER", "SLOTS")]:
                        results[node] = [SLOTS]
                        continue
                    self.ran.extend((node, c) for c in commands)
                    results[node] = [self.replies.get(c, b"OK") for c in commands]
                step = plan.send(results)
        except StopIteration as stop:
            return stop.value


def test_a_node_that_fails_after_writing_raises_and_nothing_runs_twice():
    """A pipeline of writes on three nodes; node B's connection fails after the write.
    The plan raises B's error, and A's and C's writes ran exactly once."""
    a, b, c = keys_on_every_node()
    commands = [("SET", a, 1), ("SET", b, 2), ("SET", c, 3)]
    cluster = Cluster(fail={B: [ConnectionError("reply lost")]})
    with pytest.raises(ConnectionError, match="reply lost"):
        cluster.drive(run_on_cluster(router(), commands, True))
    assert sorted(cluster.ran) == sorted([(A, commands[0]), (B, commands[1]), (C, commands[2])])


def test_a_node_never_reached_is_retried_alone():
    """Node B could not be reached (CommandNotSent): after a slot map refresh only B's
    part is sent again; A's and C's ran once; the answers are complete."""
    a, b, c = keys_on_every_node()
    commands = [("SET", a, 1), ("SET", b, 2), ("SET", c, 3)]
    cluster = Cluster(fail={B: [CommandNotSent("connection refused")]})
    assert cluster.drive(run_on_cluster(router(), commands, True)) == [b"OK"] * 3
    assert sorted(cluster.ran) == sorted([(A, commands[0]), (B, commands[1]), (C, commands[2])])


def test_reads_on_a_failed_node_are_read_again():
    """MGET parts are reads: the failed node's part is sent again, the others are not."""
    a, b, c = keys_on_every_node()
    command = ("MGET", a, b, c)
    replies = {("MGET", a): [b"1"], ("MGET", b): [b"2"], ("MGET", c): [b"3"]}
    cluster = Cluster(fail={B: [ConnectionError("reply lost")]}, replies=replies)
    assert cluster.drive(run_on_cluster(router(), [command], False)) == [b"1", b"2", b"3"]
    assert [node for node, _ in cluster.ran].count(B) == 2
    assert [node for node, _ in cluster.ran].count(A) == 1


def test_a_timeout_is_never_resent():
    """A timed-out node is not retried, even for reads: the caller sees the timeout
    after one socket timeout, not after a dozen."""
    a, _, _ = keys_on_every_node()
    cluster = Cluster(fail={A: [TimeoutError("slow")]})
    with pytest.raises(TimeoutError):
        cluster.drive(run_on_cluster(router(), [("GET", a)], False))


def test_moved_and_ask_are_followed_per_command():
    """In one pipeline, the command that got MOVED goes to the new owner and the one
    that got ASK goes to the migration target after ASKING; the others are not resent."""
    a, b, c = keys_on_every_node()
    commands = [("SET", a, 1), ("SET", b, 2), ("SET", c, 3)]
    moved = MovedError(f"{key_slot(a)} 127.0.0.1:7002")
    ask = AskError(f"{key_slot(b)} 127.0.0.1:7000")
    answers = {}

    class Redirecting(Cluster):
        def drive(self, plan):
            step = next(plan)
            first = True
            try:
                while True:
                    results = {}
                    for node, sent in step[1].items():
                        self.ran.extend((node, command) for command in sent)
                        if first:
                            results[node] = [moved if command == commands[0] else
                                             ask if command == commands[1] else b"OK"
                                             for command in sent]
                        else:
                            results[node] = [b"OK"] * len(sent)
                    first = False
                    step = plan.send(results)
            except StopIteration as stop:
                answers["value"] = stop.value

    cluster = Redirecting()
    cluster.drive(run_on_cluster(router(), commands, True))
    assert answers["value"] == [b"OK"] * 3
    assert cluster.ran.count((C, commands[2])) == 1
    assert (C, commands[0]) in cluster.ran  # MOVED: to the new owner
    asking = cluster.ran.index((A, ("ASKING",)))  # ASK: ASKING, then the command
    assert cluster.ran[asking + 1] == (A, commands[1])


def test_a_connect_timeout_is_resent_after_a_refresh():
    """A node whose connection could not be opened in time sent nothing
    (ConnectTimeout): its parts are sent again, once the slot map is refreshed."""
    from django_valkey_fast.exceptions import ConnectTimeout

    a, b, c = keys_on_every_node()
    commands = [("SET", a, 1), ("SET", b, 2)]
    cluster = Cluster(fail={B: [ConnectTimeout("connect timed out")]})
    assert cluster.drive(run_on_cluster(router(), commands, True)) == [b"OK"] * 2
    assert sorted(cluster.ran) == sorted([(A, commands[0]), (B, commands[1])])


def test_a_pipeline_is_resent_after_readonly_only_if_no_write_ran():
    """AT-MOST-ONCE after a failover: a pipeline whose every write was refused
    (READONLY) may be sent again; one in which a write ran before the refusal may not."""
    from valkey.exceptions import ReadOnlyError

    from django_valkey_fast.retry import refused_everywhere

    commands = [("SET", "a", 1), ("GET", "a"), ("SET", "b", 2)]
    refused = ReadOnlyError("READONLY")
    assert refused_everywhere(commands, [refused, b"1", refused])
    assert not refused_everywhere(commands, [b"OK", b"1", refused])
