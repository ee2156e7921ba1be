"""The cluster plan, sans-IO: replies and failures are fed straight into
``run_on_cluster``; no server. Invariant: AT-MOST-ONCE, per node: when one node's
connection fails, the parts other nodes already ran are never sent again, and a
written write whose node failed raises instead of being resent."""

from __future__ import annotations

import pytest
from valkey.exceptions import AskError, ConnectionError, MovedError, TimeoutError

from django_valkey_fast._slots import key_slot
from django_valkey_fast.cluster import (
    ABSENT, ClusterRouter, DecodedValues, read_many_on_cluster, run_on_cluster,
)
from django_valkey_fast.exceptions import DecodeError
from django_valkey_fast.exceptions import CommandNotSent
from django_valkey_fast.operations import Pause

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

    def __init__(self, fail=None, replies=None, received=False):
        self.ran: list = []
        self.fail = {node: list(errors) for node, errors in (fail or {}).items()}
        self.replies = replies or {}
        self.received = received  # call a Fanout's ``received`` per node, as drivers do
        self.events: list = []

    def drive(self, plan):
        try:
            step = next(plan)
            while True:
                if isinstance(step, Pause):
                    step = plan.send(None)
                    continue
                results = {}
                for node, commands in step.items():
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
                    if self.received and getattr(step, "received", None) is not None:
                        self.events.append(("received", node))
                        step.received(node, results[node])
                self.events.append("step ends")
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
                    for node, sent in step.items():
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


def test_tryagain_and_clusterdown_resend_only_the_refused_part():
    """TRYAGAIN (a multi-key command during a resharding) and CLUSTERDOWN replies say
    the command did not run: after a pause and a slot map refresh only that part is
    sent again; the parts other nodes ran are kept, and the answer is complete."""
    from valkey.exceptions import ClusterDownError, TryAgainError

    a, b, c = keys_on_every_node()
    commands = [("SET", a, 1), ("SET", b, 2), ("SET", c, 3)]
    for refusal in (TryAgainError("TRYAGAIN"), ClusterDownError("CLUSTERDOWN")):
        ran, steps = [], []
        plan = run_on_cluster(router(), commands, True)
        step, refused = next(plan), False
        try:
            while True:
                steps.append(type(step))
                if isinstance(step, Pause):
                    step = plan.send(None)
                    continue
                results = {}
                for node, sent in step.items():
                    if sent == [("CLUSTER", "SLOTS")]:
                        results[node] = [SLOTS]
                        continue
                    ran.extend((node, command) for command in sent)
                    results[node] = [refusal if node == B and not refused else b"OK"
                                     for _ in sent]
                    refused = refused or node == B
                step = plan.send(results)
        except StopIteration as stop:
            assert stop.value == [b"OK"] * 3
        assert sorted(ran) == sorted([(A, commands[0]), (B, commands[1]), (B, commands[1]),
                                      (C, commands[2])])
        assert Pause in steps  # (a pause before the retry, not a hot loop)


def test_a_slot_served_by_no_node_raises_clusterdown_after_the_attempts():
    """A slot map with a hole (a node lost with no replica to promote): the plan keeps
    refreshing the map, pausing between attempts, and then raises ClusterDownError
    instead of looping or sending the command anywhere."""
    from valkey.exceptions import ClusterDownError

    holed = [entry for entry in SLOTS if entry[2][1] != 7001]
    _, b, _ = keys_on_every_node()
    plan = run_on_cluster(ClusterRouter([A]), [("GET", b)], False)
    sent = []
    with pytest.raises(ClusterDownError):
        step = next(plan)
        while True:
            if isinstance(step, Pause):
                step = plan.send(None)
                continue
            assert list(step.values()) == [[("CLUSTER", "SLOTS")]]
            sent.append(step)
            step = plan.send({node: [holed] for node in step})
    assert len(sent) > 1


def test_routers_share_one_base_that_splits_commands():
    """Both routers are Routers: the splitting (MGET merged in key order, MSET by
    place, commands for every server, one cursor over every server for SCAN) is the
    base's, and each router only says where a key lives."""
    from django_valkey_fast.sharding import Router, ShardRouter

    cluster, shards = router(), ShardRouter(["s0", "s1", "s2"])
    assert isinstance(cluster, Router) and isinstance(shards, Router)
    a, b, c = keys_on_every_node()
    parts, merge = cluster.split(("MGET", a, b, c))
    assert sorted(place for place, _ in parts) == sorted(key_slot(k) for k in (a, b, c))
    by_place = {place: command for place, command in parts}
    assert merge([[f"v{command[1]}".encode()] for command in by_place.values()]) == [
        f"v{k}".encode() for k in (a, b, c)]
    parts, _ = cluster.split(("MSET", a, 1, b, 2))
    assert {command for _, command in parts} == {("MSET", a, 1), ("MSET", b, 2)}
    parts, merge = cluster.split(("DBSIZE",))
    assert [place for place, _ in parts] == cluster.every_place() == [0, 5461, 10923]
    assert merge([1, 2, 3]) == 6
    # SCAN: cursor 0 starts on the first server; a finished server moves to the next.
    parts, merge = shards.split(("SCAN", 0, "MATCH", "*"))
    assert parts == [(0, ("SCAN", 0, "MATCH", "*"))]
    assert merge([(b"0", [b"k"])]) == (1, [b"k"])
    assert merge([(b"5", [])]) == (5 * 3 + 0, [])
    with pytest.raises(NotImplementedError):
        Router().shard_for("k")


# -- read_many_on_cluster: get_many's MGET, placed directly ------------------------------


def test_read_many_places_every_node_reply_in_one_step():
    """Each slot's keys are read on its node, all nodes at once; a slot's only key is
    read with GET (a bare reply: no list to build and take apart)."""
    a, b, c = keys_on_every_node()
    replies = {("GET", a): b"1", ("GET", b): None, ("GET", c): b"3"}
    cluster = Cluster(replies=replies)
    assert cluster.drive(read_many_on_cluster(router(), ("MGET", c, a, b))) == [
        b"3", b"1", None]
    assert sorted(cluster.ran) == sorted([(A, ("GET", a)), (B, ("GET", b)), (C, ("GET", c))])


def test_read_many_runs_again_only_the_redirected_part():
    """B's part is MOVED to C: only it runs again (on C, the map updated); A's and C's
    first replies are kept."""
    a, b, c = keys_on_every_node()
    moved = MovedError(f"{key_slot(b)} 127.0.0.1:7002")

    class FirstMoved(dict):
        def get(self, command, default=None):
            if command == ("GET", b) and not self.get_moved:
                self.get_moved = True
                return moved
            return super().get(command, default)

    replies = FirstMoved({("GET", a): b"1", ("GET", b): b"2", ("GET", c): b"3",
                          ("MGET", b): [b"2"]})
    replies.get_moved = False
    cluster = Cluster(replies=replies)
    assert cluster.drive(read_many_on_cluster(router(), ("MGET", a, b, c))) == [
        b"1", b"2", b"3"]
    assert cluster.ran.count((A, ("GET", a))) == 1
    assert cluster.ran.count((C, ("GET", c))) == 1
    assert (B, ("GET", b)) in cluster.ran and (C, ("MGET", b)) in cluster.ran


def _decoder(events):
    """A decode(value, key) that records its calls: b"N" is a stored None, b"bad" does
    not decode."""

    def decode(value, key):
        events.append(("decode", key))
        if value == b"bad":
            raise DecodeError(key, "test", ValueError("not a value"))
        return None if value == b"N" else value.decode()

    return decode


@pytest.mark.parametrize("received", [True, False])
def test_read_many_decodes_each_node_as_it_answers(received):
    """With a decoder, each node's values are decoded when its replies are read, before
    the next node's arrive (the step's ``received``); a missing key is ABSENT, a stored
    None is None, a redirected part is decoded when read again; a driver that does not
    call ``received`` gets the same answer."""
    a, b, c = keys_on_every_node()
    moved = MovedError(f"{key_slot(b)} 127.0.0.1:7002")
    replies = {("GET", a): b"N", ("GET", b): moved, ("GET", c): None, ("MGET", b): [b"2"]}
    cluster = Cluster(replies=replies, received=received)
    answer = cluster.drive(read_many_on_cluster(router(), ("MGET", a, b, c),
                                                decode=_decoder(cluster.events)))
    assert type(answer) is DecodedValues and answer == [None, "2", ABSENT]
    if received:
        assert cluster.events.index(("decode", a)) < cluster.events.index(("received", C))
        assert cluster.events.index(("decode", a)) < cluster.events.index("step ends")
    assert cluster.events.count(("decode", b)) == 1  # (decoded once: after the redirect)


def test_read_many_raises_a_value_that_does_not_decode_once_every_node_answered():
    """A corrupt value on the first node is raised only after every node's replies were
    read: no connection is left with unread replies."""
    a, b, c = keys_on_every_node()
    replies = {("GET", a): b"bad", ("GET", b): b"2", ("GET", c): b"3"}
    cluster = Cluster(replies=replies, received=True)
    with pytest.raises(DecodeError):
        cluster.drive(read_many_on_cluster(router(), ("MGET", a, b, c),
                                           decode=_decoder(cluster.events)))
    assert [event for event in cluster.events if event[0] == "received"] == [
        ("received", A), ("received", B), ("received", C)]


def test_read_many_reads_a_failed_node_again_but_never_a_timed_out_one():
    a, b, c = keys_on_every_node()
    replies = {("GET", a): b"1", ("GET", c): b"3", ("MGET", b): [b"2"]}
    cluster = Cluster(fail={B: [ConnectionError("reply lost")]}, replies=replies)
    assert cluster.drive(read_many_on_cluster(router(), ("MGET", a, b, c))) == [
        b"1", b"2", b"3"]
    assert [node for node, _ in cluster.ran].count(B) == 2
    assert [node for node, _ in cluster.ran].count(A) == 1
    cluster = Cluster(fail={B: [TimeoutError("slow")]}, replies=replies)
    with pytest.raises(TimeoutError):
        cluster.drive(read_many_on_cluster(router(), ("MGET", a, b, c)))
    assert [node for node, _ in cluster.ran].count(B) == 1


def test_reads_from_replicas_take_turns_and_leave_a_failed_replica_at_once():
    """read_from_replicas: a read goes to the slot's primary and its replica in turn;
    a replica that fails sends the read to the primary at once (no pause, no slot map
    refresh), and later reads of its slots too; writes always go to the primary."""
    from django_valkey_fast.cluster import cluster_plan
    from django_valkey_fast.operations import Fanout, Pause

    replica = ("127.0.0.1", 7100)
    router = ClusterRouter([A], read_from_replicas=True)
    router.apply_slots([[0, 16383, [b"127.0.0.1", 7000], [b"127.0.0.1", 7100]]])
    assert {tuple(cluster_plan(router, ("GET", "k")).__next__()) for _ in range(2)} == {
        (A,), (replica,)}
    assert next(cluster_plan(router, ("SET", "k", b"v"))) == Fanout({A: [("SET", "k", b"v")]})
    while True:  # (the read whose turn is the replica's)
        plan = cluster_plan(router, ("GET", "k"))
        step = next(plan)
        if list(step) == [replica]:
            break
    again = plan.send({replica: ConnectionError("refused")})
    assert not isinstance(again, Pause) and again == Fanout({A: [("GET", "k")]})
    for _ in range(3):
        assert list(next(cluster_plan(router, ("GET", "k")))) == [A]


def test_a_replica_refusing_stale_reads_sends_them_to_the_primary():
    """A replica whose link to its primary is down and that serves no stale data
    answers MASTERDOWN: the read goes to the primary at once, and so do later ones."""
    from valkey.exceptions import MasterDownError

    from django_valkey_fast.cluster import cluster_plan
    from django_valkey_fast.operations import Fanout

    replica = ("127.0.0.1", 7100)
    router = ClusterRouter([A], read_from_replicas=True)
    router.apply_slots([[0, 16383, [b"127.0.0.1", 7000], [b"127.0.0.1", 7100]]])
    for command in (("GET", "k"), ("MGET", "k", "other")):
        while True:
            plan = cluster_plan(router, command)
            step = next(plan)
            if replica in step:
                break
        refused = MasterDownError("MASTERDOWN Link with MASTER is down")
        again = plan.send({node: [refused] * len(commands) for node, commands in step.items()})
        assert set(again) == {A}, again
        assert list(next(cluster_plan(router, ("GET", "k")))) == [A]
        router.apply_slots([[0, 16383, [b"127.0.0.1", 7000], [b"127.0.0.1", 7100]]])
