"""Prometheus for the local platform: ``facemint up --observability`` (ADR 0019).

Starts the ``prometheus`` binary of Debian's package (``make system-deps`` installs it) on 127.0.0.1, scraping every
service's ``/metrics`` as the chart's ServiceMonitors do (job ``facemint-<service>``, and ``namespace="local"`` so
that the rules' and dashboards' ``namespace`` aggregations work), and evaluating the chart's own rules files
(``deploy/helm/facemint/files/alerts/*.rules.yml``: the alerts and the SLO recording rules) less the rules of
components the local platform does not run (Triton's). Its data lives in ``<data dir>/prometheus``, so SLO windows
survive restarts; ``<data dir>/observability.json`` records its URL.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from facemint_local.procs import ManagedProcess, free_port, wait_until

log = logging.getLogger("facemint.up")

SERVICE_MODULES = {
    "facemint_gateway": "gateway",
    "facemint_task_orchestrator": "task-orchestrator",
    "facemint_media_decoder": "media-decoder",
    "facemint_inference": "inference",
    "facemint_library": "library",
    "facemint_webhook_dispatcher": "webhook-dispatcher",
}
"""The services' modules and their names in the chart (``job="facemint-<name>"``): replicas of one service, whatever
the supervisor calls them, are one job; other processes (a TCP front) are not scraped."""
NAMESPACE = "local"
SCRAPE_INTERVAL = "5s"
"""Scrape and rule evaluation interval: short, so that a developer sees a request in the SLO panels within seconds."""


def local_rules(rules_dir: Path, components: set[str]) -> dict[str, dict[str, Any]]:
    """File name -> rules document of every ``*.rules.yml`` in ``rules_dir``, without the rules labelled with a
    ``component`` not in ``components`` (and without groups left empty)."""
    out = {}
    for path in sorted(rules_dir.glob("*.rules.yml")):
        groups = []
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules = [r for r in group["rules"] if (r.get("labels") or {}).get("component", "") in components | {""}]
            if rules:
                groups.append({**group, "rules": rules})
        out[path.name] = {"groups": groups}
    if not out:
        raise FileNotFoundError(f"no *.rules.yml in {rules_dir}: run from the repository's root")
    return out


def service_targets(processes: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """(service, metrics port) of every ``(module, HTTP port)`` process that is one of the six services."""
    return [(SERVICE_MODULES[module], port) for module, port in processes if module in SERVICE_MODULES]


def scrape_config(targets: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """A Prometheus configuration scraping ``(service, port)`` pairs, one job per service, and the rules files."""
    jobs: dict[str, list[str]] = {}
    for service, port in targets:
        jobs.setdefault(f"facemint-{service}", []).append(f"127.0.0.1:{port}")
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": ["rules/*.rules.yml"],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": addresses, "labels": {"namespace": NAMESPACE}}]}
            for job, addresses in jobs.items()
        ],
    }


class LocalPrometheus:
    """One Prometheus process for the local platform, restarted by :meth:`supervise_once` when it exits."""

    def __init__(self, data_dir: Path, port: int, rules_dir: Path) -> None:
        self.home = data_dir / "prometheus"
        self.state_file = data_dir / "observability.json"
        self.log_path = data_dir / "logs" / "prometheus.log"
        self.port = port or free_port()
        self.rules_dir = rules_dir
        self.proc: ManagedProcess | None = None
        self.restarts = 0
        self._next_restart = 0.0

    @property
    def url(self) -> str:
        """Base URL of the web UI and HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def configure(self, targets: Iterable[tuple[str, int]], components: set[str]) -> None:
        """Write ``prometheus.yml`` and the rules of ``components`` into the Prometheus home directory."""
        rules = self.home / "rules"
        if rules.exists():
            shutil.rmtree(rules)
        rules.mkdir(parents=True)
        for name, doc in local_rules(self.rules_dir, components).items():
            (rules / name).write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(targets), sort_keys=False))

    def start(self, timeout: float = 60.0) -> None:
        """Start Prometheus and wait until it answers ``/-/ready``."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError("prometheus not found: run `make system-deps` (Debian package `prometheus`)")
        argv = [
            binary,
            f"--config.file={self.home / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc = ManagedProcess("prometheus", argv, self.log_path, cwd=self.home)
        self.proc.start()
        try:
            wait_until(self.ready, timeout, "Prometheus", interval=0.3)
        except TimeoutError:
            tail = self.proc.tail(20)
            self.stop()
            raise TimeoutError(f"Prometheus not ready after {timeout:.0f} s:\n{tail}") from None
        self.state_file.write_text(json.dumps({"prometheus_url": self.url, "pid": self.proc.pid}, indent=2))

    def ready(self) -> bool:
        """True when Prometheus answers 200 on ``/-/ready``."""
        if self.proc is None or not self.proc.alive():
            raise RuntimeError(f"Prometheus exited:\n{self.proc.tail(20) if self.proc else ''}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def supervise_once(self) -> None:
        """Start Prometheus again, at most every 5 s, if it exited."""
        if self.proc is None or self.proc.alive() or time.monotonic() < self._next_restart:
            return
        log.warning("prometheus exited with status %s; restarting", self.proc.returncode())
        self._next_restart = time.monotonic() + 5
        self.restarts += 1
        try:
            self.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            log.error("prometheus did not restart: %s", exc)

    def stop(self, grace: float = 10.0) -> None:
        """Stop Prometheus (it flushes its head block on SIGTERM)."""
        if self.proc is not None:
            self.proc.stop(grace)
