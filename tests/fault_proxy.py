"""A loopback TCP proxy that misbehaves on demand, for fault-injection tests.

Put it between a client and a real server (``FaultProxy(server.port)``, then point
the client at ``proxy.url``) and arm one fault at a time: drop, cut or duplicate the
next reply, delay replies, blackhole all traffic, or cut every connection.

Design: one acceptor thread (a selector over the listener and a wake-up socket pair)
and two blocking "pump" threads per client connection, one per direction. Closing a
connection shuts both of its sockets down at once (the peers see EOF and the pumps
wake up); the last pump of a connection to exit closes its two sockets, so no socket
is closed while another thread may still be using it. Every wait is on one
``threading.Condition`` and is bounded or woken by a state change.

An EOF or error on either side of a connection closes the whole connection.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

__all__ = ["FaultProxy"]

_CHUNK = 65536
_CONNECT_TIMEOUT = 2.0


class _Link:
    """One client connection and its server connection."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client = client
        self.server = server
        self.closed = False
        self.pumps = 2  # pump threads still running; the last one closes the sockets


class FaultProxy:
    """A loopback TCP proxy between a client and one server that misbehaves on demand."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.accepted = 0
        self._cond = threading.Condition()
        self._links: set[_Link] = set()
        self._threads: list[threading.Thread] = []
        self._armed: tuple | None = None  # ("drop",), ("cut", keep) or ("duplicate",)
        self._firing = 0  # one-shot faults taken but not yet applied
        self._delay = 0.0
        self._blackhole = False
        self._stopping = False

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"fault-proxy-{self.port}-accept")
        self._acceptor.start()

    @property
    def url(self) -> str:
        """``valkey://127.0.0.1:PORT/0`` for the proxy's port."""
        return f"valkey://127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        return f"<FaultProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}>"

    # -- controls ---------------------------------------------------------------------

    def _arm(self, fault: tuple) -> None:
        with self._cond:
            self._armed = fault
            self._cond.notify_all()

    def drop_next_reply(self) -> None:
        """The next server->client data is swallowed and that client connection is then
        closed (both sides): the server ran the command, the client never sees the reply."""
        self._arm(("drop",))

    def cut_next_reply(self, keep: int) -> None:
        """The next server->client data: forward only its first ``keep`` bytes, then close
        that client connection (both sides): a connection cut mid-reply."""
        if keep < 0:
            raise ValueError("keep must be >= 0")
        self._arm(("cut", keep))

    def duplicate_next_reply(self) -> None:
        """The next server->client data is forwarded twice (a leftover reply)."""
        self._arm(("duplicate",))

    def delay_replies(self, seconds: float) -> None:
        """Hold every server->client chunk ``seconds`` before forwarding (0 turns it off).

        The delay in force when a chunk arrives is the one it gets."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._cond:
            self._delay = float(seconds)
            self._cond.notify_all()

    def blackhole(self, on: bool = True) -> None:
        """While on, nothing is forwarded in either direction (data is held, not lost,
        and flows again when turned off); new connections are accepted but get no data."""
        with self._cond:
            self._blackhole = bool(on)
            self._cond.notify_all()

    def cut_all(self) -> None:
        """Close every current client connection (and its server side) at once."""
        with self._cond:
            links = list(self._links)
        for link in links:
            self._close(link)

    @property
    def connections(self) -> int:
        """How many client connections are open right now."""
        with self._cond:
            return len(self._links)

    def wait_armed_fault_used(self, timeout: float = 5.0) -> bool:
        """Wait until the armed one-shot fault (drop/cut/duplicate) has fired and been
        applied; True if it did (also True when none is armed), False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._armed is None and not self._firing,
                                       timeout)

    def stop(self) -> None:
        """Close the listener and every connection; join threads. Idempotent."""
        deadline = time.monotonic() + 1.0
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._acceptor.join(max(0.0, deadline - time.monotonic()))
        self.cut_all()  # the acceptor is gone: no link can be added after this
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- machinery --------------------------------------------------------------------

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._listener and not self._stopping:
                        self._accept()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        client.setblocking(True)
        with self._cond:
            self.accepted += 1
        try:
            server = socket.create_connection(self.target, timeout=_CONNECT_TIMEOUT)
        except OSError:
            _shutdown_and_close(client)
            return
        server.settimeout(None)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, server)
        pumps = [
            threading.Thread(target=self._pump, args=(link, client, server, False),
                             daemon=True, name=f"fault-proxy-{self.port}-up"),
            threading.Thread(target=self._pump, args=(link, server, client, True),
                             daemon=True, name=f"fault-proxy-{self.port}-down"),
        ]
        with self._cond:
            if self._stopping:
                link.closed = True
            else:
                self._links.add(link)
                self._threads = [t for t in self._threads if t.is_alive()] + pumps
        if link.closed:
            _shutdown_and_close(client)
            _shutdown_and_close(server)
            return
        for pump in pumps:
            pump.start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket,
              to_client: bool) -> None:
        """Forward ``src`` to ``dst`` until EOF, an error, or the link is closed."""
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    return
                fault, delay = None, 0.0
                with self._cond:
                    if to_client:
                        fault, self._armed = self._armed, None
                        self._firing += fault is not None
                        delay = self._delay
                try:
                    if not self._hold(link, delay):
                        return
                    if fault is None:
                        dst.sendall(data)
                    elif fault[0] == "duplicate":
                        dst.sendall(data)
                        dst.sendall(data)
                    else:  # drop or cut: forward what is kept, then close the link
                        if fault[0] == "cut" and fault[1]:
                            dst.sendall(data[:fault[1]])
                        self._close(link)
                        return
                finally:
                    if fault is not None:
                        with self._cond:
                            self._firing -= 1
                            self._cond.notify_all()
        except OSError:
            return
        finally:
            self._close(link)
            with self._cond:
                link.pumps -= 1
                last = link.pumps == 0
            if last:
                link.client.close()
                link.server.close()

    def _hold(self, link: _Link, delay: float) -> bool:
        """Wait out ``delay`` and then any blackhole; False if the link closed meanwhile."""
        with self._cond:
            if delay and self._cond.wait_for(lambda: link.closed, delay):
                return False
            self._cond.wait_for(lambda: link.closed or not self._blackhole)
            return not link.closed

    def _close(self, link: _Link) -> None:
        """Shut both sockets of ``link`` down now (peers see EOF, pumps wake up)."""
        with self._cond:
            if link.closed:
                return
            link.closed = True
            self._links.discard(link)
            self._cond.notify_all()
        for sock in (link.client, link.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _shutdown_and_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
