"""The client-side cache's plans: how a command runs when replies may be kept in
process memory (``local_store.LocalStore``). Sans-IO, like every plan: the caching
channels (``caching_channel.py``) run them on a sync or an asyncio channel.

- ``GET key`` and ``MGET key ...`` are answered from the store when it can; what it
  cannot answer is read after ``CLIENT TRACKING ON REDIRECT <listener id> OPTIN`` and
  ``CLIENT CACHING YES`` (the server then reports changes of these keys to the
  listener) and together with each key's ``PTTL`` (a kept reply expires with its key),
  and kept unless an invalidation or an overlapping read said otherwise meanwhile.
- ``EXISTS key`` is answered from a kept ``GET`` reply when there is one.
- A command that is not a known read drops every key it names (its ``str``
  arguments: this package's keys are ``str``, its values bytes or numbers; and every
  argument of DEL and UNLINK, which may be keys a SCAN returned as bytes) from every
  store of the configuration, before it is sent and after its reply; FLUSHDB and
  FLUSHALL empty them. A pipeline is judged command by command.

On a Valkey Cluster (``through_cluster_stores``) each node has its store and its
listener: a key is answered from the store of the node its slot is served by, read
with tracking redirected to that node's listener, and every change of the slot map
(a MOVED reply, a refresh after a failover) empties every store first (the router's
``on_change``): a slot that moves away and back must not bring back what was kept
before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from valkey.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

from django_valkey_fast._common import connection_fields
from django_valkey_fast._slots import key_slot
from django_valkey_fast.cluster import ClusterRouter, cluster_plan, refresh_slots, run_on_cluster
from django_valkey_fast.local_store import MISSING, LocalStore
from django_valkey_fast.operations import Fanout
from django_valkey_fast.retry import may_resend

__all__ = ["READS", "answer_locally", "answer_on_cluster", "through_cluster_stores",
           "through_stores"]

# Commands that change no key: they run as they are.
READS = frozenset({
    "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "STRLEN", "GETRANGE", "SCAN", "KEYS",
    "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS", "HSCAN", "SMEMBERS",
    "SISMEMBER", "SMISMEMBER", "SCARD", "SRANDMEMBER", "SSCAN", "SINTER", "SUNION",
    "SDIFF", "PING", "INFO", "ROLE", "DBSIZE", "ECHO", "SCRIPT", "READONLY",
})
FLUSHES = frozenset({"FLUSHDB", "FLUSHALL"})
_ANSWERED = frozenset({"GET", "EXISTS"})  # what answer_locally may answer
# Commands whose every argument is a key, bytes included (keys a SCAN returned).
KEYS_ONLY = frozenset({"DEL", "UNLINK"})


def answer_locally(store: LocalStore, command: tuple):
    """The reply of a two-word command (``GET key``, ``EXISTS key``) from a kept
    ``GET`` reply, or MISSING when the store cannot give it."""
    if command[0] == "GET":
        return store.lookup(command[1])
    if command[0] == "EXISTS":
        reply = store.lookup(command[1])
        if reply is not MISSING:
            return 0 if reply is None else 1
    return MISSING


def through_stores(store: LocalStore, stores: Sequence[LocalStore],
                   redirect: Callable[[], int | None], command):
    """Plan: run ``command`` (a tuple, or a list of them: a pipeline) with ``store``
    (the one of the server it runs on) keeping and answering reads, and ``stores``
    (every store of the configuration) forgetting what it writes. ``redirect()`` is
    the listener's client id, None while it is not connected."""
    if type(command) is tuple:
        verb = command[0]
        if verb == "GET" and len(command) == 2:
            return (yield from _read_many(store, redirect, command[1:], single=True))
        if verb == "MGET":
            return (yield from _read_many(store, redirect, command[1:], single=False))
    keys = _written_keys(command)
    if keys == ():
        return (yield command)
    _forget(stores, keys)
    try:
        return (yield command)
    finally:
        _forget(stores, keys)


def answer_on_cluster(nodes, router: ClusterRouter, command: tuple):
    """``answer_locally`` on a cluster: from the store of the node serving the key's
    slot (``nodes.store_of(node)``, None before that node's first read)."""
    if router.ready and command[0] in _ANSWERED:
        store = nodes.store_of(router.slots[key_slot(command[1])])
        if store is not None:
            return answer_locally(store, command)
    return MISSING


def through_cluster_stores(router: ClusterRouter, nodes, command):
    """Plan: ``through_stores`` on a cluster (its reply an exception object for an
    error reply, as the cluster plans answer). ``nodes`` is the configuration's
    client-side cache of the cluster: ``server_at(node)`` the store and listener of a
    node, ``store_of(node)`` its store if it has one, iterating it every store."""
    if type(command) is tuple:
        verb = command[0]
        if verb == "GET" and len(command) == 2:
            return (yield from _read_on_cluster(router, nodes, command[1:], single=True))
        if verb == "MGET":
            return (yield from _read_on_cluster(router, nodes, command[1:], single=False))
        plan = cluster_plan(router, command)
    else:
        plan = run_on_cluster(router, command, True)
    keys = _written_keys(command)
    if keys == ():
        return (yield from plan)
    _forget(nodes, keys)
    try:
        return (yield from plan)
    finally:
        _forget(nodes, keys)


def _written_keys(command):
    """The keys ``command`` (a tuple, or a pipeline: a list of them) may change: ``()``
    if it changes none (reads only), None if it empties the database (FLUSHDB,
    FLUSHALL), else a list (``_named_keys`` of each write)."""
    if type(command) is tuple:
        verb = command[0]
        if verb in READS:
            return ()
        return None if verb in FLUSHES else _named_keys(command)
    keys: list = []
    wrote = False
    for each in command:
        verb = each[0]
        if verb in READS:
            continue
        if verb in FLUSHES:
            return None
        keys += _named_keys(each)
        wrote = True
    return keys if wrote else ()


def _named_keys(command) -> list:
    """The keys a write may change: every ``str`` argument (this package's keys are
    ``str``, its values bytes or numbers), and every argument of DEL and UNLINK."""
    if command[0] in KEYS_ONLY:
        return [arg.decode("utf-8", "surrogateescape") if type(arg) is bytes else arg
                for arg in command[1:]]
    return [arg for arg in command[1:] if type(arg) is str]


def _forget(stores, keys) -> None:
    # (before a write is sent, and again once its reply is in: see the module's doc)
    for store in stores:
        if keys is None:
            store.flush()
        elif keys:
            store.invalidate(keys)


def _read_many(store: LocalStore, redirect, keys: Sequence, single: bool):
    """Plan: ``GET key`` (``single``) or ``MGET keys``, from the store where it can."""
    replies = store.lookup_many(keys)
    missing = [position for position, reply in enumerate(replies) if reply is MISSING]
    if not missing:
        return replies[0] if single else replies
    wanted = [keys[position] for position in missing]
    read = ("GET", wanted[0]) if single else ("MGET", *wanted)
    # Tokens first, then the listener's id: a listener that reconnects in between
    # flushes, which voids these tokens, whatever id the read then names.
    tokens = [store.begin_read(key) for key in wanted]
    try:
        client_id = redirect()
        if client_id is None:  # the listener is not connected: read without keeping
            answer = yield read
            found = [answer] if single else answer
            _keep(store, wanted, tokens, found, None)
        else:
            answers = yield _tracked_pipeline(client_id, [read], wanted)
            ((answer, keep, ttls),) = _tracked_replies(answers, [len(wanted)], client_id)
            if isinstance(answer, Exception):
                raise answer
            found = [answer] if single else answer
            _keep(store, wanted, tokens, found, ttls if keep else None)
    finally:
        for key, token in zip(wanted, tokens):
            store.abandon_read(key, token)  # (a no-op for the ones kept)
    for position, reply in zip(missing, found):
        replies[position] = reply
    return replies[0] if single else replies


def _tracked_pipeline(client_id, reads: list, wanted: Sequence) -> list:
    """The pipeline of ``reads`` (GETs and MGETs of the keys ``wanted``, in order) whose
    replies may be kept: tracking redirected to the listener ``client_id`` first, then
    each read after its ``CLIENT CACHING YES``, then each key's PTTL. OPTIN + CACHING
    YES: only these reads are tracked on the connection, not every other command it
    runs (the server's table and the listener's traffic hold the keys kept here, not
    all keys read). ``client_id`` may be ``(id, addr, laddr)`` (the listener's
    ``redirect`` when it verifies): then ``CLIENT LIST ID`` comes first, to check that
    the id is the listener's on the server this connection reached."""
    if type(client_id) is tuple:
        client_id = client_id[0]
        pipeline: list = [("CLIENT", "LIST", "ID", client_id)]
    else:
        pipeline = []
    pipeline.append(("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "OPTIN"))
    for read in reads:
        pipeline += (("CLIENT", "CACHING", "YES"), read)
    pipeline += [("PTTL", key) for key in wanted]
    return pipeline


def _tracked_replies(replies: list, counts: Sequence[int], client_id=None) -> list:
    """``[(answer, keep, ttls), ...]``, one per read of a :func:`_tracked_pipeline`
    (for ``client_id``) whose reads asked for ``counts`` keys: the read's reply,
    whether its values may be kept (tracking was on for it: it is refused when the
    listener it names has just gone, whose successor, once subscribed, flushes anyway;
    and, verified, the id was the listener's; the reply is still the caller's answer)
    and its keys' PTTL replies."""
    at = 0
    tracking = True
    if type(client_id) is tuple:  # (CLIENT LIST ID first: the server's view of the id)
        seen = connection_fields(replies[0])
        tracking = (seen.get("addr"), seen.get("laddr")) == client_id[1:]
        at = 1
    tracking = tracking and not isinstance(replies[at], Exception)
    ttl_at = at + 1 + 2 * len(counts)
    walked = []
    for index, count in enumerate(counts):
        caching = replies[at + 1 + 2 * index]
        walked.append((replies[at + 2 + 2 * index],
                       tracking and not isinstance(caching, Exception),
                       replies[ttl_at:ttl_at + count]))
        ttl_at += count
    return walked


def _keep(store: LocalStore, keys: Sequence, tokens: Sequence, found: Sequence,
          ttls: Sequence | None) -> None:
    """Tell the store what each key's read under its token answered the caller: kept
    with its PTTL, or (``ttls`` None: untracked; a PTTL that failed) not kept, which
    still drops a kept reply that differs and is noted by a later read of the key
    (``LocalStore.finish_read``): a caller given a value is not served an older one."""
    if ttls is None:
        for key, token, reply in zip(keys, tokens, found):
            store.finish_read(key, token, reply, None)
        return
    for key, token, reply, ttl in zip(keys, tokens, found, ttls):
        store.finish_read(key, token, reply, None if isinstance(ttl, Exception) else ttl)


_REFUSED = (MovedError, AskError, TryAgainError, ClusterDownError)  # not run: read again


def _read_on_cluster(router: ClusterRouter, nodes, keys: Sequence, single: bool):
    """Plan: ``GET key`` (``single``) or ``MGET keys`` on a cluster, from the stores
    where they can; the rest read from every node at once, each node's reads after
    tracking redirected to its listener, one ``GET``/``MGET`` per slot. What comes
    back redirected, refused, or from a node that failed is read again through the
    general cluster plan, and not kept (the next read keeps it)."""
    if not router.ready:
        yield from refresh_slots(router)
    slots = router.slots
    key_slots = [key_slot(key) for key in keys]
    on_node: dict = {}  # node -> [position, ...]
    for position, slot in enumerate(key_slots):
        node = slots[slot]
        if node is None:  # a slot no known node serves: the general plan refreshes
            return (yield from cluster_plan(router, ("GET" if single else "MGET", *keys)))
        positions = on_node.get(node)
        if positions is None:
            on_node[node] = [position]
        else:
            positions.append(position)
    replies: list = [MISSING] * len(keys)
    missing: dict = {}  # node -> {slot: [position, ...]}
    stores: dict = {}  # node -> its store
    for node, positions in on_node.items():
        store = stores[node] = nodes.server_at(node).store
        kept = store.lookup_many([keys[position] for position in positions])
        for position, reply in zip(positions, kept):
            if reply is MISSING:
                missing.setdefault(node, {}).setdefault(key_slots[position], []).append(position)
            else:
                replies[position] = reply
    if not missing:
        return replies[0] if single else replies
    # Tokens first, then the listeners' ids (see _read_many).
    store_at = {position: stores[node] for node, groups in missing.items()
                for positions in groups.values() for position in positions}
    tokens = {position: store.begin_read(keys[position]) for position, store in store_at.items()}
    try:
        reads: dict = {}  # node -> its reads, one per slot
        sent: dict = {}  # node -> its pipeline (its reads alone when untracked)
        ids: dict = {}  # node -> its listener's redirect
        for node, groups in missing.items():
            reads[node] = node_reads = [
                ("GET", keys[positions[0]]) if single
                else ("MGET", *[keys[position] for position in positions])
                for positions in groups.values()]
            client_id = ids[node] = nodes.server_at(node).redirect_id()
            sent[node] = node_reads if client_id is None else _tracked_pipeline(
                client_id, node_reads,
                [keys[position] for positions in groups.values() for position in positions])
        results = yield Fanout(sent)
        again: list = []
        for node, groups in missing.items():
            result = results[node]
            if isinstance(result, BaseException):  # the node's connection failed
                if not may_resend(result, reads[node]):
                    raise result
                again.extend(position for positions in groups.values() for position in positions)
                continue
            if sent[node] is reads[node]:  # (untracked: the reads' replies, nothing kept)
                walked = [(answer, False, ()) for answer in result]
            else:
                counts = [len(positions) for positions in groups.values()]
                walked = _tracked_replies(result, counts, ids[node])
            for positions, (answer, keep, ttls) in zip(groups.values(), walked):
                if isinstance(answer, Exception):
                    if isinstance(answer, MovedError):
                        router.moved(answer)
                    if not isinstance(answer, _REFUSED):
                        return answer  # an error about the command itself: its reply
                    again.extend(positions)
                    continue
                found = [answer] if single else answer
                for position, reply in zip(positions, found):
                    replies[position] = reply
                store = store_at[positions[0]]  # (a slot's keys: one node, one store)
                _keep(store, [keys[position] for position in positions],
                      [tokens[position] for position in positions], found,
                      ttls if keep else None)
    finally:
        for position, token in tokens.items():
            store_at[position].abandon_read(keys[position], token)
    if again:
        again.sort()
        read_again = ("GET", keys[again[0]]) if single else \
            ("MGET", *[keys[position] for position in again])
        found = yield from cluster_plan(router, read_again)
        if isinstance(found, Exception):
            return found
        for position, reply in zip(again, [found] if single else found):
            replies[position] = reply
            # (nothing kept; its token was let go above, which finish_read allows)
            store_at[position].finish_read(keys[position], tokens[position], reply, None)
    return replies[0] if single else replies
