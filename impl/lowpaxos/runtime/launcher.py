"""Start a local cluster of replica processes on 127.0.0.1 (``make run``, tests, the bench).

``LocalCluster`` writes a cluster file and a fresh key into a directory, starts
one ``python -m lowpaxos.runtime.replica`` process per replica (each in its own
process group), waits until each answers PING, and can kill (SIGKILL) and
restart single replicas. ``stop`` ends every process it started. Every replica
also gets ``--lifetime-seconds``, so none outlives a crashed launcher for long.

``lowpaxos cluster`` (``command``) also supervises: a replica that exits is
restarted after a back-off (``RestartBackoff``) while the others keep serving,
as a process supervisor would restart a replica on a real machine. It restarts
from its database, like after SIGKILL. Ctrl-C, SIGTERM or ``--seconds`` stop all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.runtime.cluster import DEFAULT_PROTOCOL, new_key_hex, write_cluster_file

READY_TIMEOUT_S = 20.0
SUPERVISE_INTERVAL_S = 0.2  # how often the launcher looks at its replicas


def free_ports(count: int, kind: int) -> list[int]:
    """Ports the kernel reports free on 127.0.0.1 now (bound together, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, kind)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ping(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class LocalCluster:
    def __init__(self, directory: str | Path, replicas: int = 3, *, tick_ms: int = 10,
                 limits: dict | None = None, protocol: dict | None = None, trace: bool = False,
                 proxied: bool = False, lifetime_s: float = 3600.0, log_to_files: bool = True,
                 python: str = sys.executable, protocol_name: str = DEFAULT_PROTOCOL) -> None:
        """``protocol_name``: a registry name; ``protocol``: that protocol's config fields."""
        self.directory = Path(directory)
        self.protocol_name = protocol_name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = replicas
        self.python = python
        self.lifetime_s = lifetime_s
        self.log_to_files = log_to_files
        self.resp_ports = free_ports(replicas, socket.SOCK_STREAM)
        udp = free_ports(2 * replicas if proxied else replicas, socket.SOCK_DGRAM)
        # With a proxy, peers send to the advertised port and the replica binds another.
        self.udp_ports = udp[:replicas]
        self.bind_ports = udp[replicas:] if proxied else udp[:replicas]
        self.cluster_file = self.directory / "cluster.toml"
        (self.directory / "cluster.key").write_text(new_key_hex() + "\n", encoding="ascii")
        os.chmod(self.directory / "cluster.key", 0o600)
        write_cluster_file(self.cluster_file, self.udp_ports, self.resp_ports, tick_ms=tick_ms,
                           bind_ports=self.bind_ports if proxied else None, limits=limits,
                           protocol=protocol, trace_dir="trace" if trace else None,
                           protocol_name=protocol_name)
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self) -> None:
        for replica_id in range(self.count):
            self.start_replica(replica_id, wait=False)
        for replica_id in range(self.count):
            self.wait_ready(replica_id)

    def start_replica(self, replica_id: int, wait: bool = True) -> None:
        assert replica_id not in self.processes or self.processes[replica_id].poll() is not None, \
            "a replica runs at most once"
        command = [self.python, "-m", "lowpaxos.runtime.replica", "--cluster",
                   str(self.cluster_file), "--id", str(replica_id),
                   "--lifetime-seconds", str(self.lifetime_s)]
        log = None
        if self.log_to_files:
            log = open(self.directory / f"replica-{replica_id}.log", "ab")  # noqa: SIM115
        self.processes[replica_id] = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        if log is not None:
            log.close()
        if wait:
            self.wait_ready(replica_id)

    def wait_ready(self, replica_id: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        process = self.processes[replica_id]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"replica {replica_id} exited with {process.returncode}; "
                                   f"see {self.directory}/replica-{replica_id}.log")
            if ping(self.resp_ports[replica_id]):
                return
            time.sleep(0.05)
        raise RuntimeError(f"replica {replica_id} not ready within {timeout_s} s")

    def kill_replica(self, replica_id: int, sig: int = signal.SIGKILL) -> None:
        process = self.processes.get(replica_id)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def pids(self) -> dict[int, int]:
        return {i: p.pid for i, p in self.processes.items() if p.poll() is None}

    def stop(self) -> None:
        """SIGTERM every replica, then SIGKILL those still running after 5 s."""
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class RestartBackoff:
    """How long to wait before restarting a replica that exited (time passed in).

    The first restart waits ``first_s``; each exit soon after a restart doubles the
    wait, up to ``max_s``, so a replica that cannot start (a corrupt database, a port
    taken) costs a line every ``max_s`` instead of a busy loop. A run that lasted
    ``stable_s`` counts as healthy and resets the wait.
    """

    def __init__(self, first_s: float = 0.5, max_s: float = 10.0, stable_s: float = 30.0) -> None:
        assert 0 < first_s <= max_s, "the first wait is positive and at most the longest"
        self.first_s = first_s
        self.max_s = max_s
        self.stable_s = stable_s
        self.next_s = first_s

    def after_exit(self, ran_s: float) -> float:
        """The wait before the next start, for a process that ran ``ran_s`` seconds."""
        if ran_s >= self.stable_s:
            self.next_s = self.first_s
        delay = self.next_s
        self.next_s = min(self.max_s, self.next_s * 2)
        return delay


class Supervisor:
    """Restart the replicas of ``cluster`` that exit, each after its own back-off.

    ``poll(now)`` is called every SUPERVISE_INTERVAL_S with the monotonic time; it
    prints one line per exit and per restart (the smoke test greps for 'exited').
    """

    def __init__(self, cluster: LocalCluster, now: float, print_line=print) -> None:
        self.cluster = cluster
        self.print_line = print_line
        self.backoff = {replica_id: RestartBackoff() for replica_id in range(cluster.count)}
        self.started_at = {replica_id: now for replica_id in range(cluster.count)}
        self.restart_at: dict[int, float] = {}  # replica id -> when to start it again
        self.restarts = 0

    def poll(self, now: float) -> None:
        for replica_id, process in list(self.cluster.processes.items()):
            if replica_id in self.restart_at:
                if now >= self.restart_at[replica_id]:
                    del self.restart_at[replica_id]
                    self.cluster.start_replica(replica_id, wait=False)
                    self.started_at[replica_id] = now
                    self.restarts += 1
                    self.print_line(f"replica {replica_id} restarted "
                                    f"(pid {self.cluster.processes[replica_id].pid})")
                continue
            if process.poll() is None:
                continue
            delay = self.backoff[replica_id].after_exit(now - self.started_at[replica_id])
            self.restart_at[replica_id] = now + delay
            self.print_line(f"replica {replica_id} exited with {process.returncode}; restarting "
                            f"in {delay:g} s (log: {self.cluster.directory}/replica-{replica_id}.log)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``lowpaxos cluster`` options (lowpaxos.cli calls this)."""
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--dir", default=None, help="working directory (default: a new temp dir)")
    parser.add_argument("--tick-ms", type=int, default=10)
    parser.add_argument("--trace", action="store_true", help="write NDJSON traces under DIR/trace")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                        help=f"the replication protocol: {', '.join(PROTOCOLS)} "
                             f"(default {DEFAULT_PROTOCOL})")
    parser.add_argument("--seconds", type=float, default=3600.0,
                        help="stop by itself after this long (default one hour)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lowpaxos cluster", description="Run a local cluster on 127.0.0.1.")
    add_arguments(parser)
    return command(parser.parse_args(argv))


def command(arguments: argparse.Namespace) -> int:
    """Start the cluster, print the RESP ports and a ready line, restart replicas that
    exit, stop on Ctrl-C, SIGTERM or after ``--seconds``."""
    if not 1 <= arguments.replicas <= 255:
        print("lowpaxos cluster: --replicas must lie in 1..255", file=sys.stderr)
        return 2
    if arguments.protocol not in PROTOCOLS:
        print(f"lowpaxos cluster: unknown protocol {arguments.protocol!r}; known: "
              f"{', '.join(PROTOCOLS)}", file=sys.stderr)
        return 2
    directory = Path(arguments.dir or tempfile.mkdtemp(prefix="lowpaxos-cluster-"))
    cluster = LocalCluster(directory, arguments.replicas, tick_ms=arguments.tick_ms,
                           trace=arguments.trace, lifetime_s=arguments.seconds + 60,
                           protocol_name=arguments.protocol)
    stop = {"now": False}

    def request_stop(signal_number, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        try:
            cluster.start()
        except RuntimeError as error:
            # A replica that exits or never answers at start: say which, and where its
            # log is, without a traceback.
            print(f"lowpaxos cluster: {error}", file=sys.stderr, flush=True)
            return 1
        pids = cluster.pids()
        for replica_id, port in enumerate(cluster.resp_ports):
            print(f"replica {replica_id}: RESP on 127.0.0.1:{port} (redis-cli -p {port}), "
                  f"pid {pids[replica_id]}", flush=True)
        print(f"cluster files and logs in {directory}", flush=True)
        print(f"ready: {arguments.replicas} {arguments.protocol} replicas; Ctrl-C stops", flush=True)
        supervisor = Supervisor(cluster, time.monotonic(),
                                lambda line: print(line, flush=True))
        deadline = time.monotonic() + arguments.seconds
        # Bounded by --seconds (or a stop signal).
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(SUPERVISE_INTERVAL_S)
            if not stop["now"]:
                supervisor.poll(time.monotonic())
    finally:
        cluster.stop()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
