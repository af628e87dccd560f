"""Prometheus file-based service discovery (file_sd) for the simulator's endpoints.

Two files in the targets directory, both in Prometheus' ``file_sd_configs`` JSON format:

* ``aipolicy-sim-pods.json``: one target group per pod::

    {"targets": ["127.0.0.1:<port>"],
     "labels": {"__metrics_path__": "/metrics/pods/<namespace>/<pod>",
                "namespace": "<namespace>", "pod": "<pod>", "service": "<isvc>"}}

* ``aipolicy-sim-services.json``: one group per service (API-backed: gateway metrics; self-hosted:
  its front door's waiting requests), path
  ``/metrics/services/<namespace>/<service>``, labels ``namespace`` and ``service``.

The endpoints already carry ``namespace``/``pod``/``service`` on every series, so the scrape
job should set ``honor_labels: true``; otherwise Prometheus keeps the target's labels and
renames the exposed ones to ``exported_namespace`` etc. (same values either way). Example::

    - job_name: aipolicy-sim
      honor_labels: true
      file_sd_configs: [{files: ["<targets dir>/*.json"], refresh_interval: 5s}]

Files are replaced atomically (temporary file in the same directory, then rename), so
Prometheus never reads half a file, and rewritten only when their content changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aipolicy.sim.model import ServiceId

__all__ = [
    "PODS_FILE",
    "SERVICES_FILE",
    "TargetsWriter",
    "pod_metrics_path",
    "pod_target_groups",
    "service_metrics_path",
    "service_target_groups",
    "write_json_atomic",
]

PODS_FILE = "aipolicy-sim-pods.json"
SERVICES_FILE = "aipolicy-sim-services.json"


def pod_metrics_path(namespace: str, pod: str) -> str:
    return f"/metrics/pods/{namespace}/{pod}"


def service_metrics_path(namespace: str, service: str) -> str:
    return f"/metrics/services/{namespace}/{service}"


def pod_target_groups(address: str, pods: Iterable[tuple[ServiceId, str]]) -> list[dict[str, Any]]:
    """One group per ``(service, pod)``, sorted by namespace and pod."""
    groups = [
        {
            "targets": [address],
            "labels": {
                "__metrics_path__": pod_metrics_path(sid.namespace, pod),
                "namespace": sid.namespace,
                "pod": pod,
                "service": sid.name,
            },
        }
        for sid, pod in pods
    ]
    return sorted(groups, key=lambda g: (g["labels"]["namespace"], g["labels"]["pod"]))


def service_target_groups(address: str, services: Iterable[ServiceId]) -> list[dict[str, Any]]:
    return [
        {
            "targets": [address],
            "labels": {
                "__metrics_path__": service_metrics_path(sid.namespace, sid.name),
                "namespace": sid.namespace,
                "service": sid.name,
            },
        }
        for sid in sorted(services)
    ]


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON to ``path`` via a temporary file in the same directory and a rename."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; Prometheus may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class TargetsWriter:
    """Keeps the two file_sd files equal to the current pods and API services."""

    def __init__(self, directory: Path, address: str, *, prefix: str = "") -> None:
        """`prefix` keeps several simulators sharing one Prometheus out of each other's files."""
        self.directory = directory
        self.address = address
        self.pods_file = f"{prefix}{PODS_FILE}"
        self.services_file = f"{prefix}{SERVICES_FILE}"
        self._last: dict[str, str] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Take this simulator's targets away (on shutdown): no target of a dead process stays."""
        for name in (self.pods_file, self.services_file):
            (self.directory / name).unlink(missing_ok=True)
        self._last.clear()

    def sync(self, pods: Iterable[tuple[ServiceId, str]], services: Iterable[ServiceId]) -> bool:
        """Rewrite whichever file changed; True if anything was written."""
        wrote = False
        for name, groups in (
            (self.pods_file, pod_target_groups(self.address, pods)),
            (self.services_file, service_target_groups(self.address, services)),
        ):
            key = json.dumps(groups, sort_keys=True)
            if self._last.get(name) != key:
                write_json_atomic(self.directory / name, groups)
                self._last[name] = key
                wrote = True
        return wrote
