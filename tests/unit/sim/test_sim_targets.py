"""Prometheus file_sd files: format, atomic replacement, pods that go away."""

from __future__ import annotations

import json
from pathlib import Path

from aipolicy.sim.model import ServiceId
from aipolicy.sim.targets import PODS_FILE, SERVICES_FILE, TargetsWriter

A = ServiceId("team-a", "chat")


def test_file_sd_format_and_removal(tmp_path: Path) -> None:
    w = TargetsWriter(tmp_path, "127.0.0.1:9400")
    assert w.sync([(A, "chat-1"), (A, "chat-0")], [ServiceId("team-b", "gpt")])
    groups = json.loads((tmp_path / PODS_FILE).read_text())
    assert groups == [
        {
            "targets": ["127.0.0.1:9400"],
            "labels": {
                "__metrics_path__": "/metrics/pods/team-a/chat-0",
                "namespace": "team-a",
                "pod": "chat-0",
                "service": "chat",
            },
        },
        {
            "targets": ["127.0.0.1:9400"],
            "labels": {
                "__metrics_path__": "/metrics/pods/team-a/chat-1",
                "namespace": "team-a",
                "pod": "chat-1",
                "service": "chat",
            },
        },
    ]
    services = json.loads((tmp_path / SERVICES_FILE).read_text())
    assert services[0]["labels"] == {
        "__metrics_path__": "/metrics/services/team-b/gpt",
        "namespace": "team-b",
        "service": "gpt",
    }
    assert w.sync([(A, "chat-1")], [])
    pods = json.loads((tmp_path / PODS_FILE).read_text())
    assert [g["labels"]["pod"] for g in pods] == ["chat-1"]
    assert json.loads((tmp_path / SERVICES_FILE).read_text()) == []
    # No temporary files are left behind and unchanged content is not rewritten.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([PODS_FILE, SERVICES_FILE])
    before = (tmp_path / PODS_FILE).stat().st_mtime_ns
    assert not w.sync([(A, "chat-1")], [])
    assert (tmp_path / PODS_FILE).stat().st_mtime_ns == before
    assert (tmp_path / PODS_FILE).stat().st_mode & 0o777 == 0o644
