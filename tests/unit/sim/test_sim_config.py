"""Configuration: YAML services map, traffic specs, faults; bad input is refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipolicy.sim.config import (
    ConfigError,
    FaultSpec,
    build_traffic,
    load_config,
    parse_traffic,
)
from aipolicy.sim.model import Backend, ServiceId
from aipolicy.sim.traffic import Burst, ConstantRate, Diurnal, Silence, Step, TraceReplay

YAML = """
seed: 7
defaults:
  capacity: {prefillTokensPerSecond: 5000}
services:
  team-a/chat:
    modelName: llama-3.1-8b
    capacity: {decodeTokensPerSecond: 900, maxConcurrentSequences: 16}
    queueTimeoutSeconds: 120
    traffic: {kind: trace, speedup: 10, scale: 2}
    faults: {errorRate: 0.1}
  team-a/gpt:
    backend: api
    modelName: gpt-4o-mini
    apiCapacity: {baseLatencySeconds: 0.2}
    traffic: {kind: constant, rate: 2, duration: 60}
"""


def test_load_config(tmp_path: Path) -> None:
    p = tmp_path / "sim.yaml"
    p.write_text(YAML)
    cfg = load_config(p)
    assert cfg.seed == 7
    specs = cfg.service_specs()
    chat = specs[ServiceId("team-a", "chat")].settings()
    assert chat.model == "llama-3.1-8b"
    assert chat.capacity.decode_tokens_per_s == 900
    assert chat.capacity.max_concurrent_sequences == 16
    assert chat.queue_timeout_s == 120
    gpt = specs[ServiceId("team-a", "gpt")]
    assert gpt.settings().backend is Backend.API
    assert gpt.settings().api_capacity.base_latency_s == 0.2
    assert cfg.defaults.settings().capacity.prefill_tokens_per_s == 5000
    assert specs[ServiceId("team-a", "chat")].faults == FaultSpec(error_rate=0.1)
    src = build_traffic(specs[ServiceId("team-a", "chat")].traffic)  # type: ignore[arg-type]
    assert isinstance(src, TraceReplay)
    assert (src.speedup, src.scale) == (10, 2)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("services: {chat: {}}", "namespace/name"),
        ("services: {a/b: {capacity: {decodeTokensPerSecond: -1}}}", "greater than 0"),
        ("services: {a/b: {traffic: {kind: zigzag}}}", "zigzag"),
        ("services: {a/b: {bogus: 1}}", "bogus"),
        ("services: [", "while parsing"),
    ],
)
def test_bad_config_is_refused(tmp_path: Path, text: str, fragment: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(p)


def test_every_traffic_kind_builds() -> None:
    cases = {
        "constant": ({"rate": 2}, ConstantRate),
        "step": ({"before": 1, "after": 2, "at": 5}, Step),
        "burst": ({"base": 1, "peak": 5, "start": 2, "length": 3}, Burst),
        "diurnal": ({"mean": 1, "amplitude": 0.3, "period": 60, "peakAt": 10}, Diurnal),
        "silence": ({}, Silence),
    }
    for kind, (extra, cls) in cases.items():
        src = build_traffic(parse_traffic({"kind": kind, "duration": 30, **extra}))
        assert type(src) is cls
        assert src.duration == 30


def test_traffic_sizes_from_trace_and_path_rules(tmp_path: Path) -> None:
    src = build_traffic(parse_traffic({"kind": "constant", "rate": 1, "duration": 5,
                                       "sizesFromTrace": True}))  # fmt: skip
    assert {r.prompt_tokens for r in src.requests()} != {512}
    with pytest.raises(ConfigError, match="only in the config file"):
        parse_traffic({"kind": "trace", "path": "/etc/passwd"})
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-01-01 00:00:00,3,4\n")
    local = build_traffic(parse_traffic({"kind": "trace", "path": "t.csv"}, allow_path=True),
                          base_dir=tmp_path)  # fmt: skip
    assert [r.prompt_tokens for r in local.requests()] == [3]
