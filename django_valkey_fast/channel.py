"""The sync I/O step: write packed commands to one server and read the replies.

A ``Channel`` wraps the connection pool of one valkey-py client. It keeps its own
LIFO of idle connections taken from that pool, so a command costs one ``sendall``
and the parser's read: no per-call client object, no ``connect()`` and
``can_read()`` syscalls at checkout (valkey-py's pool makes both on every command).
A connection the server closed while idle is detected by the failed write or read
and the command is retried once on a fresh connection, which is what valkey-py's
default retry does too. Channels are process-wide (one per pool) and forgotten in a
forked child.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref

from valkey.exceptions import ConnectionError, ReadOnlyError, ResponseError, TimeoutError

from django_valkey_fast._wire import pack_command, pack_commands

__all__ = ["Channel", "channel_for", "channel_for_pool"]

_channels: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_channels_lock = threading.Lock()


def channel_for(client) -> "Channel":
    """Return the process-wide channel of a valkey-py client's connection pool."""
    return channel_for_pool(client.connection_pool)


def channel_for_pool(pool) -> "Channel":
    """Return the process-wide channel of a valkey-py connection pool."""
    try:
        return _channels[pool]
    except KeyError:
        with _channels_lock:
            channel = _channels.get(pool)
            if channel is None:
                channel = _channels[pool] = Channel(pool)
            return channel


def _forget_idle_connections():
    # In a forked child the parent's sockets must not be used (nor closed).
    for channel in list(_channels.values()):
        channel._idle = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_idle_connections)


class Channel:
    """One server's connections, and the sync step that runs commands on them."""

    def __init__(self, pool, pack_command=pack_command, pack_commands=pack_commands):
        self.pool = pool
        self._idle: list = []
        # The RESP packers: the compiled or pure twins (the benchmark sets both).
        self.pack_command = pack_command
        self.pack_commands = pack_commands

    def _checkout(self):
        try:
            return self._idle.pop(), True
        except IndexError:
            return self.pool.get_connection("_"), False

    def _discard(self, connection):
        connection.disconnect()
        self.pool.release(connection)

    def _roundtrip(self, connection, packed: bytes, replies):
        # ``replies`` is None for one command, else the length of a pipeline.
        sock = connection._sock
        if sock is None or connection.health_check_interval:
            connection.send_packed_command(packed)  # connects, checks health
        else:
            try:
                sock.sendall(packed)
            except socket.timeout:
                raise TimeoutError(f"Timeout writing to {connection._host_error()}")
            except OSError as error:
                raise ConnectionError(
                    f"Error while writing to {connection._host_error()}: {error}"
                )
        parser = connection._parser
        if replies is None:
            return self._read(connection, parser)
        # A pipeline: error replies are returned in place, after all are read; an
        # error that is not about one command (authentication, ...) is then raised.
        results = []
        for _ in range(replies):
            try:
                results.append(self._read(connection, parser))
            except (ResponseError, ConnectionError) as error:
                results.append(error)
        for result in results:
            if isinstance(result, (ConnectionError, ReadOnlyError)):
                raise result
        return results

    @staticmethod
    def _read(connection, parser):
        try:
            reply = parser.read_response()
        except socket.timeout:
            raise TimeoutError(f"Timeout reading from {connection._host_error()}")
        except OSError as error:
            raise ConnectionError(f"Error while reading from {connection._host_error()}: {error}")
        if isinstance(reply, Exception):  # error replies (ResponseError, AuthenticationError)
            raise reply
        return reply

    def _run(self, packed: bytes, replies):
        connection, reused = self._checkout()
        for attempt in (0, 1):
            try:
                result = self._roundtrip(connection, packed, replies)
            except ReadOnlyError:
                # A write reached a replica: after a failover this connection points
                # at the demoted primary. Reconnect (Sentinel names the new one), retry once.
                self._discard(connection)
                if attempt:
                    raise
            except ResponseError:
                self._idle.append(connection)
                raise
            except (ConnectionError, TimeoutError, OSError) as error:
                self._discard(connection)
                # A connection the server closed while idle: retry once on a new one.
                if attempt or not reused or isinstance(error, TimeoutError):
                    raise
            except BaseException:
                self._discard(connection)
                raise
            else:
                self._idle.append(connection)
                return result
            connection = self.pool.get_connection("_")
        raise AssertionError("unreachable")

    def call(self, args):
        """Run one command (a tuple of arguments) and return its reply."""
        return self._run(self.pack_command(args), None)

    def pipeline(self, commands):
        """Run several commands in one round trip; error replies come back in place."""
        return self._run(self.pack_commands(commands), len(commands))

    def disconnect(self):
        """Close the idle connections (they are reopened on next use)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            self._discard(connection)
