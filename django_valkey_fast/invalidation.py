"""The invalidation listener of the client-side cache: one connection per server per
process, subscribed to the server's invalidation messages, read by a daemon thread.

The data connections stay plain RESP2: a read whose reply may be kept turns tracking
on for its own connection with ``REDIRECT`` to this listener's client id (RESP2's
redirect mode; RESP3 would put the messages on the data connections, which the sync
and asyncio wire paths would then both have to sort from replies). So one thread per
server serves the sync path, every event loop and every thread alike.

The listener tells its owner (callbacks handed in at construction, see
``local_store.LocalStore``):

- ``connected(unread)`` once subscribed, under a new client id; ``unread()`` tells
  whether its socket holds bytes not read yet;
- ``invalidate(keys)`` for each message naming keys, ``flush()`` for a message
  naming none (FLUSHDB, FLUSHALL);
- ``reading(True)`` before it takes bytes from its socket, ``reading(False)`` once
  it has applied everything it took (a hit is served only when the socket is empty
  and the listener is not reading);
- ``proved(as_of)`` when the reply of a PING sent at ``as_of`` arrives: every message
  the server sent before it has been read;
- ``disconnected()`` when the connection fails; it reconnects after a pause.
"""

from __future__ import annotations

import functools
import os
import select
import threading
import time

from valkey.exceptions import ResponseError

from django_valkey_fast._common import connection_fields
from django_valkey_fast._valkeypy import socket_of
from django_valkey_fast._wire import fd_readable

__all__ = ["InvalidationListener"]

CHANNEL = b"__redis__:invalidate"


class _Unsupported(Exception):
    """The server refused CLIENT TRACKING."""


def _word(value) -> bytes:
    # (a connection built with decode_responses=True answers str)
    return value.encode() if isinstance(value, str) else value


class InvalidationListener:
    """Reads one server's invalidation messages on a thread of its own.

    ``connect`` returns a new, connected valkey-py connection to the server (the data
    pool's connection class and settings: TLS, Unix sockets, AUTH and Sentinel
    discovery included). ``heartbeat`` is how often (seconds) a PING proves the
    listener current."""

    def __init__(self, connect, owner, heartbeat: float, name: str = "valkey",
                 verify: bool = False):
        self._connect = connect
        self._owner = owner
        self.heartbeat = heartbeat
        # What data connections name as their redirect, when the listener is up (None
        # otherwise): its client id; with ``verify``, ``(id, addr, laddr)``. Data
        # connections may then reach another server than this listener's (Sentinel: a
        # replica pool rotates replicas; a failover moves the primary), where the same
        # id may be someone else's and the redirect would be accepted: a read checks
        # with ``CLIENT LIST ID`` that the id is this connection as the server sees it
        # (``addr``, ``laddr`` of CLIENT INFO) before its reply is kept.
        self.verify = verify
        self.redirect: int | tuple | None = None
        self._connection = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._name = name
        self._lock = threading.Lock()
        self.error: BaseException | None = None  # the last failure, for diagnostics
        # Set when the server refuses CLIENT TRACKING (too old, or an ACL): the thread
        # stops, and the cache reports it instead of running without invalidations.
        self.unsupported: BaseException | None = None

    @property
    def client_id(self) -> int | None:
        """The listener's client id (None while it is not subscribed)."""
        redirect = self.redirect
        return redirect[0] if isinstance(redirect, tuple) else redirect

    def ensure_started(self) -> None:
        """Start the thread unless it runs (in this process: a fork starts its own),
        or the server refused tracking (then nothing is started again)."""
        thread = self._thread
        if (thread is not None and thread.is_alive() and self._pid == os.getpid()) \
                or self.unsupported is not None:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() \
                    and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.redirect = None
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"django-valkey-fast invalidations ({self._name})",
                daemon=True)
            self._thread.start()

    def after_fork(self) -> None:
        """In a forked child: the parent's thread is not here, nor may its lock be
        free; the next use starts a thread of this process."""
        self._lock = threading.Lock()
        self._thread = None
        self._connection = None
        self.redirect = None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection."""
        self._stopped.set()
        connection = self._connection
        if connection is not None:
            try:
                connection.disconnect()
            except Exception:  # noqa: BLE001 - closing what may be broken already
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        pause = 0.05
        while not self._stopped.is_set():
            try:
                self._listen()
                pause = 0.05
            except _Unsupported as refused:
                self.unsupported = refused.args[0]
                self._stopped.set()
            except Exception as error:  # noqa: BLE001 - any failure: flush and retry
                self.error = error
            finally:
                self.redirect = None
                self._owner.disconnected()
                connection, self._connection = self._connection, None
                if connection is not None:
                    try:
                        connection.disconnect()
                    except Exception:  # noqa: BLE001
                        pass
            if self._stopped.wait(pause):
                return
            pause = min(pause * 2, 1.0)

    def _listen(self) -> None:
        connection = self._connection = self._connect()
        connection.send_command("CLIENT", "ID")
        client_id = int(connection.read_response())
        redirect: int | tuple = client_id
        if self.verify:
            connection.send_command("CLIENT", "INFO")
            try:
                seen = connection_fields(connection.read_response())
            except ResponseError as error:  # (before Redis 6.2: no CLIENT INFO)
                raise _Unsupported(error) from error
            redirect = (client_id, seen.get("addr"), seen.get("laddr"))
        connection.send_command("CLIENT", "TRACKING", "OFF")  # (refused where unsupported)
        try:
            connection.read_response()
        except ResponseError as error:
            raise _Unsupported(error) from error
        connection.send_command("SUBSCRIBE", CHANNEL)
        reply = connection.read_response()
        if not (isinstance(reply, list) and reply and _word(reply[0]) == b"subscribe"):
            raise ConnectionError(f"unexpected reply to SUBSCRIBE: {reply!r}")
        owner, clock, stopped = self._owner, time.monotonic, self._stopped
        fd = socket_of(connection).fileno()
        owner.connected(functools.partial(fd_readable, fd))
        # Bytes leave the socket only while the owner has been told ``reading(True)``,
        # and ``reading(False)`` comes once what was taken is applied: a hit checks the
        # socket, then that word (local_store.LocalStore.lookup). (A partial message may
        # stay in the parser after ``reading(False)``: its rest is still to come through
        # the socket, which a hit checks first, and nothing of it was applied.)
        owner.reading(True)
        buffered = connection.can_read(timeout=0)  # (bytes read with SUBSCRIBE's reply)
        if not buffered:
            owner.reading(False)
        # (Published last: no read is tracked to this listener before it can apply.)
        self.redirect = redirect
        ping_sent = None
        next_ping = clock()
        while not stopped.is_set():
            heartbeat = self.heartbeat  # (a configuration sharing the listener may lower it)
            now = clock()
            if ping_sent is None and now >= next_ping:
                ping_sent = now
                # (a failed send closes the socket, and with it what was unread: no hit
                # until disconnected() runs)
                owner.reading(True)
                connection.send_command("PING")
                if not buffered:
                    owner.reading(False)
            if not buffered:
                wait = max(0.0, next_ping - now) if ping_sent is None else heartbeat
                readable = _wait_readable(fd, wait)  # (takes nothing from the socket)
                if stopped.is_set():
                    return
                if readable:
                    owner.reading(True)
                    # (TLS: the bytes may be a record with nothing for us: no wait for
                    # more than the heartbeat's, then the PING rule below)
                    readable = connection.can_read(timeout=wait)
                    if not readable:
                        owner.reading(False)
                if not readable:
                    if ping_sent is not None and clock() - ping_sent > 2 * heartbeat + 1:
                        raise TimeoutError("the invalidation connection stopped answering PING")
                    continue
            message = connection.read_response()
            kind = _word(message[0]) if isinstance(message, list) and message else None
            if kind == b"message":
                keys = message[2]
                if keys is None:
                    owner.flush()
                else:
                    owner.invalidate([key.decode("utf-8", "surrogateescape")
                                      if isinstance(key, bytes) else key for key in keys])
            elif kind == b"pong":
                if ping_sent is not None:
                    owner.proved(ping_sent)
                    ping_sent = None
                    next_ping = clock() + heartbeat
            else:
                raise ConnectionError(f"unexpected message on the invalidation connection: "
                                      f"{message!r}")
            if stopped.is_set():
                return  # (stop() closed the connection: can_read would open another)
            buffered = connection.can_read(timeout=0)  # (still reading: it may take bytes)
            if not buffered:
                owner.reading(False)


def _wait_readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until ``fd`` has something to read (bytes, EOF,
    an error), reading nothing."""
    if not hasattr(select, "poll"):  # (Windows)
        return bool(select.select([fd], [], [fd], timeout)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))
