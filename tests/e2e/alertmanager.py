"""A real Alertmanager for the e2e tests (Debian's prometheus-alertmanager, `make alertmanager`):
on 127.0.0.1, a free port, its storage in a temporary folder, no clustering, stopped by pid."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.cluster import ManagedProcess, free_port, http_ready, wait_until

# Alertmanager needs a route and a receiver; a receiver without integrations notifies nobody.
CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@dataclass
class Alertmanager:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alerts_url(self) -> str:
        """What a budget's webhookUrl names: the v2 alerts API."""
        return f"{self.url}/api/v2/alerts"

    def start(self) -> None:
        program = binary()
        assert program is not None, "Alertmanager is missing: run `make alertmanager`"
        config = self.workdir / "alertmanager.yml"
        config.write_text(CONFIG)
        args = [
            program,
            f"--config.file={config}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip: nothing listens beyond loopback
        ]
        self.process = ManagedProcess(args, {}, self.workdir / "alertmanager.log").start()
        wait_until("Alertmanager ready", self.ready, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def ready(self) -> bool:
        return http_ready(self.url)

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds as active (resolved ones are not listed), by label."""
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in labels.items()])
        with urllib.request.urlopen(f"{self.alerts_url}?{query}", timeout=5) as response:
            found: list[dict[str, Any]] = json.load(response)
        return found
