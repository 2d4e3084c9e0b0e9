"""A NATS JetStream cluster of several ``nats-server`` processes on 127.0.0.1 (the design's 3-node NATS, locally).

Each node has its own client, monitor and route port and its own storage directory; the nodes route to each other
and elect a JetStream meta leader, so streams with 3 replicas (R3) can be created as on a production cluster.
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
class _Node:
    name: str
    port: int
    monitor_port: int
    route_port: int
    proc: ManagedProcess | None = None


@dataclass
class NatsCluster:
    """``size`` JetStream-enabled NATS servers routed to each other."""

    data_dir: Path
    size: int = 3
    nodes: list[_Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [_Node(f"n{i + 1}", free_port(), free_port(), free_port()) for i in range(self.size)]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (the services' ``NATS__URL`` form)."""
        return ",".join(f"nats://127.0.0.1:{node.port}" for node in self.nodes)

    def start(self, timeout: float = 60.0) -> None:
        """Start every node and wait until JetStream has a meta leader known to all of them."""
        for node in self.nodes:
            self.start_node(node)
        wait_until(self._meta_leader_elected, timeout, "NATS JetStream cluster")

    def start_node(self, node: _Node) -> None:
        """Start (or restart) one node with its ports and storage."""
        routes = ",".join(f"nats://127.0.0.1:{other.route_port}" for other in self.nodes if other is not node)
        store = self.data_dir / node.name
        store.mkdir(parents=True, exist_ok=True)
        argv = [
            _venv_bin("nats-server"), "-js", "-sd", str(store), "-n", node.name, "-a", "127.0.0.1",
            "-p", str(node.port), "-m", str(node.monitor_port), "--cluster_name", CLUSTER_NAME,
            "--cluster", f"nats://127.0.0.1:{node.route_port}", "--routes", routes,
        ]  # fmt: skip
        node.proc = ManagedProcess(f"nats-{node.name}", argv, store / "nats.log")
        node.proc.start()

    def _meta_leader_elected(self) -> bool:
        for node in self.nodes:
            if node.proc is not None and not node.proc.alive():
                raise RuntimeError(f"nats-server {node.name} exited:\n{node.proc.tail()}")
            try:
                url = f"http://127.0.0.1:{node.monitor_port}/jsz"
                with urllib.request.urlopen(url, timeout=1) as resp:
                    meta = json.load(resp).get("meta_cluster") or {}
            except OSError:
                return False
            if not meta.get("leader"):
                return False
        return True

    def stop(self, grace: float = 10.0) -> None:
        """Stop every node."""
        for node in self.nodes:
            if node.proc is not None:
                node.proc.stop(grace)
