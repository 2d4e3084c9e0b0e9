"""A NATS JetStream cluster of several ``nats-server`` processes on 127.0.0.1 (the design's 3-node NATS, locally).

Each node has its own client, monitor and route port and its own storage directory; the nodes route to each other
and elect a JetStream meta leader, so streams with 3 replicas (R3) can be created as on a production cluster. A node
is a server like the others of :mod:`facemint_local.servers` (``start``, ``stop``, ``proc``, ``port``): the local
supervisor restarts a killed node on its ports and storage, and it rejoins the cluster.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from facemint_local.procs import ManagedProcess, free_port, wait_until
from facemint_local.servers import _venv_bin

CLUSTER_NAME = "facemint"


@dataclass
class NatsNode:
    """One JetStream-enabled node of a cluster: its ports, its storage, the route ports of its peers."""

    name: str
    data_dir: Path
    port: int
    monitor_port: int
    route_port: int
    peer_routes: list[int] = field(default_factory=list)
    log_dir: Path | None = None
    proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Client URL of this node."""
        return f"nats://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process without waiting (a cluster's nodes start together, then elect a leader)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.peer_routes)
        argv = [
            _venv_bin("nats-server"), "-js", "-sd", str(self.data_dir), "-n", self.name, "-a", "127.0.0.1",
            "-p", str(self.port), "-m", str(self.monitor_port), "--cluster_name", CLUSTER_NAME,
            "--cluster", f"nats://127.0.0.1:{self.route_port}", "--routes", routes,
        ]  # fmt: skip
        self.proc = ManagedProcess(self.name, argv, (self.log_dir or self.data_dir) / f"{self.name}.log")
        self.proc.start()

    def start(self, timeout: float = 30.0) -> None:
        """(Re)start this node alone and wait until it knows the cluster's JetStream meta leader (it has rejoined)."""
        self.spawn()
        wait_until(self.meta_leader_known, timeout, f"NATS node {self.name}")

    def meta_leader_known(self) -> bool:
        """True when this node answers and names a JetStream meta leader; raises when its process has exited."""
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"nats-server {self.name} exited:\n{self.proc.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/jsz", timeout=1) as resp:
                meta = json.load(resp).get("meta_cluster") or {}
        except OSError:
            return False
        return bool(meta.get("leader"))

    def stop(self, grace: float = 10.0) -> None:
        """Stop this node."""
        if self.proc is not None:
            self.proc.stop(grace)


@dataclass
class NatsCluster:
    """``size`` JetStream-enabled NATS servers routed to each other. ``ports`` fixes the nodes' client ports
    (the monitor ports are ``monitor_base`` + index when given); free ports otherwise."""

    data_dir: Path
    size: int = 3
    log_dir: Path | None = None
    ports: list[int] = field(default_factory=list)
    monitor_base: int = 0
    nodes: list[NatsNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        routes = [free_port() for _ in range(self.size)]
        self.nodes = [
            NatsNode(
                name=f"nats-{i + 1}",
                data_dir=self.data_dir / f"n{i + 1}",
                port=self.ports[i] if i < len(self.ports) and self.ports[i] else free_port(),
                monitor_port=self.monitor_base + i if self.monitor_base else free_port(),
                route_port=routes[i],
                peer_routes=[port for j, port in enumerate(routes) if j != i],
                log_dir=self.log_dir,
            )
            for i in range(self.size)
        ]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (the services' ``NATS__URL`` form)."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 60.0) -> None:
        """Start every node and wait until JetStream has a meta leader known to all of them."""
        for node in self.nodes:
            node.spawn()
        wait_until(lambda: all(node.meta_leader_known() for node in self.nodes), timeout, "NATS JetStream cluster")

    def stop(self, grace: float = 10.0) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop(grace)
