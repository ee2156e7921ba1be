"""The asyncio I/O step: one multiplexed connection per event loop and server.

``RespConnection`` is an ``asyncio.Protocol``: a command's bytes go into the
transport and a future waits for its reply; replies are matched to futures in order
as ``data_received`` parses them (libvalkey's Reader, or the pure-Python one). Any
number of tasks share the connection, and commands issued by different tasks while a
reply is outstanding are coalesced into one write per loop iteration
(auto-pipelining). A cancelled caller's reply is read and dropped, so cancellation
never corrupts the connection; a reply nobody waits for means the connection is out
of step, and it is closed.

``AsyncChannel`` owns the connection for one (event loop, server): it connects on
first use (AUTH, SELECT, CLIENT SETNAME pipelined) in a task of its own, so
cancelling one of the callers waiting for it cancels nobody else; it reconnects after
the server closed it, resends a command at most once and only under
:mod:`~django_valkey_fast.retry`'s rule (a command still queued when the connection
dropped never reached the server; a written read may be resent; a written write may
have run, so its caller gets the error); it enforces ``socket_timeout`` and, like
valkey-py's sync connections, a connect timeout that defaults to ``socket_timeout``.
It is found through :func:`channel_for`, which keys channels by running loop, so a
second ``asyncio.run()`` or another thread's loop never touches a dead loop's sockets.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import os
import ssl as ssl_module
import threading

from valkey._parsers.base import BaseParser
from valkey.exceptions import (
    ConnectionError, InvalidResponse, ReadOnlyError, TimeoutError,
)

from django_valkey_fast._common import pipeline_error
from django_valkey_fast._valkeypy import Reader, abandon_transport, abandon_valkey_pool
from django_valkey_fast._wire import pack_command, pack_commands
from django_valkey_fast.exceptions import CommandNotSent, ConnectTimeout, MalformedReply
from django_valkey_fast.retry import may_resend, refused_everywhere

__all__ = [
    "AsyncChannel", "PerLoop", "RespConnection", "abandon_transport", "abandon_valkey_pool",
    "channel_for", "channels_of_loop", "connect_timeout", "connection_params",
    "sweep_closed_loops",
]

_CLOSED = "Connection closed by server."


class RespConnection(asyncio.Protocol):
    """One socket to the server; replies are handed to waiting futures in order."""

    def __init__(self, loop, timeout=None, parse_error=BaseParser.parse_error):
        self._loop = loop
        self._reader = Reader(protocolError=InvalidResponse, replyError=parse_error)
        # Each waiter: [future, replies expected, replies so far (list) or None]
        self._waiters: collections.deque = collections.deque()
        self._transport = None
        self._pending: list = []
        self._flush_scheduled = False
        self._timeout = timeout
        self._deadline = None
        self.closed = False

    # -- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport):
        self._transport = transport

    def data_received(self, data):
        reader = self._reader
        reader.feed(data)
        waiters = self._waiters
        while waiters:
            try:
                reply = reader.gets()
            except Exception as error:  # noqa: BLE001 - not RESP: InvalidResponse, or a
                # RESP3 map with an unhashable key (TypeError): out of step for good
                self._fail(MalformedReply(f"Malformed reply from the server: {error}"))
                self.close()
                return
            if reply is False:
                break
            waiter = waiters[0]
            if waiter[2] is None:
                waiters.popleft()
                if not waiter[0].done():
                    waiter[0].set_result(reply)
            else:
                replies = waiter[2]
                replies.append(reply)
                if len(replies) == waiter[1]:
                    waiters.popleft()
                    if not waiter[0].done():
                        waiter[0].set_result(replies)
        if not waiters and reader.has_data():
            # Bytes (even part of a reply) that no command asked for: what follows
            # would be out of step.
            self._fail(ConnectionError("Unexpected reply from the server; connection closed"))
            self.close()
            return
        if self._deadline is not None:
            self._rearm_deadline()

    def connection_lost(self, exc):
        self._fail(ConnectionError(_CLOSED if exc is None else f"{_CLOSED} {exc}"))

    # -- sending --------------------------------------------------------------------

    def send(self, packed: bytes, replies: int, pipeline: bool = False):
        """Queue ``packed`` (``replies`` commands); return the future of the reply,
        or with ``pipeline`` of the list of replies.

        If the connection is lost before the reply, the future's error is
        :class:`CommandNotSent` when ``packed`` was never written."""
        if self.closed or self._transport.is_closing():
            raise CommandNotSent(_CLOSED)
        future = self._loop.create_future()
        waiters = self._waiters
        if not waiters and not self._pending:
            # Nothing outstanding: write now (lowest latency for a lone caller).
            self._transport.write(packed)
        else:
            # Others are waiting: join this loop iteration's single write.
            self._pending.append(packed)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        waiters.append([future, replies, [] if pipeline else None])
        if self._timeout and self._deadline is None:
            self._deadline = self._loop.call_later(self._timeout, self._timed_out)
        return future

    def _flush(self):
        self._flush_scheduled = False
        if self.closed:
            return  # what is still pending was never written: _fail says so
        pending = self._pending
        if pending:
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
            pending.clear()

    # -- timeouts and failure -----------------------------------------------------------

    def _rearm_deadline(self):
        self._deadline.cancel()
        self._deadline = (
            self._loop.call_later(self._timeout, self._timed_out) if self._waiters else None
        )

    def _timed_out(self):
        self._deadline = None
        if self._waiters:
            # Replies would now be out of step with their callers: drop the connection.
            self._fail(TimeoutError(f"Timeout reading from the server ({self._timeout}s)"))
            self.close()

    def _fail(self, error):
        self.closed = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        waiters, self._waiters = self._waiters, collections.deque()
        # The last len(pending) waiters' commands are still queued: never written.
        written = len(waiters) - len(self._pending)
        self._pending.clear()
        not_sent = None
        for index, waiter in enumerate(waiters):
            if waiter[0].done():
                continue
            if index < written:
                waiter[0].set_exception(error)
            else:
                not_sent = not_sent or CommandNotSent(f"{error} (the command was not sent)")
                waiter[0].set_exception(not_sent)

    def close(self):
        """Close the socket (waiting callers get ConnectionError)."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def abandon(self):
        """Close the socket of a connection whose event loop is already closed."""
        self.closed = True
        abandon_transport(self._transport)


def _ssl_context(params: dict):
    cert_reqs = params.get("ssl_cert_reqs", "required")
    if isinstance(cert_reqs, str):
        cert_reqs = {"none": ssl_module.CERT_NONE, "optional": ssl_module.CERT_OPTIONAL,
                     "required": ssl_module.CERT_REQUIRED}[cert_reqs.lower()]
    context = ssl_module.create_default_context()
    # Host names are checked unless switched off, or certificates are not verified.
    check_hostname = params.get("ssl_check_hostname")
    context.check_hostname = (cert_reqs != ssl_module.CERT_NONE if check_hostname is None
                              else bool(check_hostname))
    context.verify_mode = cert_reqs
    if params.get("ssl_ca_certs") or params.get("ssl_ca_path") or params.get("ssl_ca_data"):
        context.load_verify_locations(cafile=params.get("ssl_ca_certs"),
                                      capath=params.get("ssl_ca_path"),
                                      cadata=params.get("ssl_ca_data"))
    if params.get("ssl_certfile"):
        context.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"),
                                params.get("ssl_password"))
    if params.get("ssl_min_version") is not None:
        context.minimum_version = params["ssl_min_version"]
    if params.get("ssl_ciphers"):
        context.set_ciphers(params["ssl_ciphers"])
    return context


def connection_params(pool) -> dict:
    """The connection settings of a valkey-py pool (sync or asyncio), as a plain dict.

    For a Sentinel-managed pool the address is not fixed: the dict carries what is
    needed to ask Sentinel for it (``sentinel``), on every (re)connect.
    """
    params = dict(pool.connection_kwargs)
    name = pool.connection_class.__name__
    params["unix"] = "UnixDomainSocket" in name
    params["ssl"] = "SSL" in name
    if "Sentinel" in name:
        manager = pool.sentinel_manager
        params["sentinel"] = {
            "service": pool.service_name,
            "primary": bool(pool.is_master),
            "sentinels": [dict(sentinel.connection_pool.connection_kwargs, unix=False,
                               ssl=False) for sentinel in manager.sentinels],
        }
    return params


def connect_timeout(params: dict):
    """The connect timeout: ``socket_connect_timeout``, else ``socket_timeout`` (as
    valkey-py's sync connections do), else None (wait as long as the kernel does)."""
    return params.get("socket_connect_timeout") or params.get("socket_timeout")


async def _connect(loop, params: dict, host=None, port=None) -> "RespConnection":
    """Open a connection to ``params``' server (or to ``host``:``port``) and log in;
    the whole of it within the connect timeout."""
    timeout = connect_timeout(params)
    where = params["path"] if params["unix"] else (
        f"{host or params.get('host', 'localhost')}:{port or params.get('port', 6379)}")
    try:
        return await asyncio.wait_for(_open_connection(loop, params, host, port), timeout)
    except asyncio.TimeoutError:
        raise ConnectTimeout(f"Timeout connecting to {where}") from None
    except OSError as error:  # nothing was sent
        raise CommandNotSent(f"Error connecting to {where}: {error}") from error


async def _open_connection(loop, params: dict, host, port) -> "RespConnection":
    """Connect and log in; the socket is closed if logging in fails or is cancelled."""
    if params.get("cluster"):
        from valkey.cluster import ClusterParser  # MOVED, ASK, TRYAGAIN, CLUSTERDOWN

        parse_error = ClusterParser.parse_error
    else:
        parse_error = BaseParser.parse_error

    def factory():
        return RespConnection(loop, params.get("socket_timeout"), parse_error)

    if params["unix"]:
        _, connection = await loop.create_unix_connection(factory, params["path"])
    else:
        _, connection = await loop.create_connection(
            factory, host or params.get("host", "localhost"), port or params.get("port", 6379),
            ssl=_ssl_context(params) if params["ssl"] else None,
        )
    try:
        await _handshake(connection, params)
    except BaseException:
        # Failed, timed out or cancelled while logging in: never leak the socket.
        connection.close()
        raise
    return connection


async def _handshake(connection: "RespConnection", params: dict) -> None:
    """AUTH, SELECT, CLIENT SETNAME and READONLY (``readonly``), pipelined; an error
    reply is raised."""
    handshake: list[tuple] = []
    if params.get("password"):
        if params.get("username"):
            handshake.append(("AUTH", params["username"], params["password"]))
        else:
            handshake.append(("AUTH", params["password"]))
    if params.get("db"):
        handshake.append(("SELECT", params["db"]))
    if params.get("client_name"):
        handshake.append(("CLIENT", "SETNAME", params["client_name"]))
    if params.get("readonly"):  # (a cluster read from replicas)
        handshake.append(("READONLY",))
    if handshake:
        replies = await connection.send(pack_commands(handshake), len(handshake), True)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply


def _healthy_replicas(reply) -> list:
    replicas = []
    for flat in reply:
        fields = dict(zip(flat[::2], flat[1::2]))
        flags = fields.get(b"flags", b"").split(b",")
        if not {b"s_down", b"o_down", b"disconnected"} & set(flags):
            replicas.append((fields[b"ip"].decode(), int(fields[b"port"])))
    return replicas


class AsyncChannel:
    """The connection to one server on one event loop, and the async I/O step."""

    def __init__(self, loop, params: dict):
        self._loop = loop
        self.params = params
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Task | None = None
        self._replica_turn = 0
        self.pack_command = pack_command
        self.pack_commands = pack_commands

    async def _sentinel_address(self, sentinel: dict):
        """Ask the Sentinels where the primary (or a replica) of the service is.

        Each Sentinel has the connect timeout to answer (the data connection's: a
        Sentinel that accepts and then says nothing, paused or overloaded, would
        otherwise hold every caller forever); the next one is asked after it."""
        errors = []
        timeout = connect_timeout(self.params)
        for sentinel_params in sentinel["sentinels"]:
            try:
                return await asyncio.wait_for(self._ask_sentinel(sentinel_params, sentinel),
                                              timeout)
            except (ConnectionError, TimeoutError, asyncio.TimeoutError) as error:
                errors.append(error if not isinstance(error, asyncio.TimeoutError) else
                              TimeoutError(f"Sentinel {sentinel_params.get('host')}:"
                                           f"{sentinel_params.get('port')} did not answer"))
                continue
            except LookupError:  # this Sentinel does not know the service
                continue
        raise ConnectionError(f"No Sentinel knows the service {sentinel['service']!r}: {errors}")

    async def _ask_sentinel(self, sentinel_params: dict, sentinel: dict):
        """One Sentinel's answer: ``(host, port)``, or LookupError if it knows none."""
        connection = await _connect(self._loop, sentinel_params)
        try:
            primary = await connection.send(pack_command(
                ("SENTINEL", "get-master-addr-by-name", sentinel["service"])), 1)
            if sentinel["primary"] or isinstance(primary, Exception) or primary is None:
                replicas = []
            else:
                replicas = _healthy_replicas(await connection.send(pack_command(
                    ("SENTINEL", "replicas", sentinel["service"])), 1))
        finally:
            connection.close()
        if replicas:
            self._replica_turn += 1
            return replicas[self._replica_turn % len(replicas)]
        if primary is not None and not isinstance(primary, Exception):
            return primary[0].decode(), int(primary[1])
        raise LookupError(sentinel["service"])

    async def _open(self) -> RespConnection:
        sentinel = self.params.get("sentinel")
        if sentinel is None:
            return await _connect(self._loop, self.params)
        host, port = await self._sentinel_address(sentinel)
        return await _connect(self._loop, self.params, host, port)

    async def connection(self) -> RespConnection:
        """The open connection, connecting (once, for all callers) if needed.

        The connection is opened by a task of its own that every caller waits for
        (shielded): a caller cancelled while waiting stops waiting, and nobody else
        is cancelled; the connection still opens for the others.
        """
        connection = self.open_connection()
        if connection is not None:
            return connection
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = self._loop.create_task(self._open_for_all())
            connecting.add_done_callback(_retrieve)
        return await asyncio.shield(connecting)

    async def _open_for_all(self) -> RespConnection:
        try:
            connection = self._connection = await self._open()
            return connection
        finally:
            self._connecting = None

    def open_connection(self) -> RespConnection | None:
        """The connection if it is open (a command can be sent on it now), else None."""
        connection = self._connection
        if connection is None or connection.closed:
            return None
        return connection

    async def _send(self, packed: bytes, replies: int, pipeline: bool, commands,
                    attempts=(0, 1)):
        for attempt in attempts:
            connection = self.open_connection() or await self.connection()
            try:
                reply = await connection.send(packed, replies, pipeline)
            except ConnectionError as error:  # not TimeoutError: never resent
                if attempt or not may_resend(error, commands):
                    raise
                continue  # never sent, or only reads: once more, on a new connection
            if isinstance(reply, ReadOnlyError) or (
                pipeline and any(isinstance(r, ReadOnlyError) for r in reply)
            ):
                # A write reached a replica, which refused it: the primary failed
                # over. Reconnect (Sentinel names the new primary) and retry once, if
                # no write of a pipeline ran before the refusal.
                connection.close()
                if not attempt and (not pipeline or refused_everywhere(commands, reply)):
                    continue
            return reply
        raise AssertionError("unreachable")

    async def call(self, args, attempts=(0, 1)):
        """Run one command; return its reply (an error reply is raised). ``attempts``
        (1,) is the second attempt only (``call_again``)."""
        reply = await self._send(self.pack_command(args), 1, False, (args,), attempts)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def call_again(self, args, connection: RespConnection, outcome: Exception,
                         replied: bool):
        """The rest of ``call`` for a command whose first attempt a driver sent itself
        on ``connection`` (``connection.send(pack_command(args), 1)``) and which ended
        in ``outcome``: an error reply (``replied``) or a ``ConnectionError`` raised.
        The same rules as ``call``: an error reply is raised, except READONLY, which
        reconnects and retries once (error replies valkey-py makes ConnectionErrors,
        LOADING or NOAUTH, are replies all the same); a raised error is resent once
        only if the command provably did not run (or only reads)."""
        if replied:
            if not isinstance(outcome, ReadOnlyError):
                raise outcome
            connection.close()
        elif not isinstance(outcome, ConnectionError) or not may_resend(outcome, (args,)):
            raise outcome
        return await self.call(args, attempts=(1,))

    async def pipeline(self, commands):
        """Run several commands in one write; error replies come back in place.

        An error that is not about one command (authentication, ...) is raised.
        """
        replies = await self._send(self.pack_commands(commands), len(commands), True,
                                   commands)
        error = pipeline_error(replies)
        if error is not None:
            raise error  # as the sync channel does
        return replies

    def close(self):
        """Close the connection (the next command reconnects)."""
        loop_closed = self._loop.is_closed()
        if self._connection is not None:
            if loop_closed:
                self._connection.abandon()
            else:
                self._connection.close()
            self._connection = None
        lock_client = getattr(self, "valkey_client", None)
        if lock_client is not None and loop_closed:
            abandon_valkey_pool(lock_client.connection_pool)
            self.valkey_client = None


def _retrieve(task) -> None:
    # The connecting task's error reaches its waiters; if they were all cancelled,
    # retrieve it here so asyncio does not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()


# Channels by event loop, then by connection settings. A closed loop's channels are
# swept (their sockets closed) when a new loop first asks for a channel.
_registry: dict = {}
_registry_lock = threading.Lock()


def _forget_loops_in_child() -> None:
    # A forked child runs none of the parent's loops and must not touch their sockets;
    # a lock a parent thread held at fork time would never be released.
    global _registry_lock
    _registry_lock = threading.Lock()
    _registry.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_loops_in_child)


def _settings_key(params: dict):
    return repr(sorted((k, v) for k, v in params.items() if k not in ("retry", "parser_class",
                                                                       "connection_pool")))


def sweep_closed_loops() -> None:
    """Close the sockets of every channel whose event loop has closed."""
    with _registry_lock:
        for old_loop in [old for old in _registry if old.is_closed()]:
            for channel in _registry.pop(old_loop).values():
                channel.close()


atexit.register(sweep_closed_loops)


def channel_for(params: dict, loop=None) -> AsyncChannel:
    """Return the process-wide channel for ``params`` on the running event loop."""
    loop = loop or asyncio.get_running_loop()
    by_settings = _registry.get(loop)
    if by_settings is None:
        sweep_closed_loops()
        with _registry_lock:
            by_settings = _registry.setdefault(loop, {})
    key = _settings_key(params)
    channel = by_settings.get(key)
    if channel is None:
        channel = by_settings.setdefault(key, AsyncChannel(loop, params))
    return channel


class PerLoop:
    """State built once per event loop for an object that threads share, each thread
    running its own loop (a module-level cache used from ``async_to_sync`` workers,
    several ``asyncio.run`` calls...).

    The last ``(loop, state)`` pair is one tuple, read and replaced whole, so a thread
    never pairs its loop with another loop's state: no check-then-act on two
    attributes, no reliance on the GIL. Threads that alternate rebuild the state
    (``build(loop)``), which only looks channels up in the per-loop registry.
    """

    __slots__ = ("_build", "_last")

    def __init__(self, build):
        self._build = build
        self._last = (None, None)

    def get(self):
        """The running loop's state, built on its first use."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last[0] is loop:
            return last[1]
        state = self._build(loop)
        self._last = (loop, state)
        return state

    def current(self):
        """The running loop's state if it has been built, else None (no running loop too)."""
        last = self._last
        try:
            return last[1] if last[0] is asyncio.get_running_loop() else None
        except RuntimeError:
            return None

    def reset(self) -> None:
        """Forget the state: the next ``get`` builds it anew."""
        self._last = (None, None)


def channels_of_loop(loop) -> list:
    """The channels open on ``loop`` (for tests and diagnostics)."""
    return list(_registry.get(loop, {}).values())
