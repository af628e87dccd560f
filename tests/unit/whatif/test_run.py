"""What-if runs: the operator's own decide_replicas on a trace, reports that count misses, CLI."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.cli import main as aipolicy_main
from aipolicy.policy.serving import PROFILES
from aipolicy.whatif import report
from aipolicy.whatif.run import OperatorScaler, StaticScaler, run
from aipolicy.whatif.traces import Trace

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _step_trace(before: float, after: float, at: float, end: float) -> Trace:
    """Uniform arrivals, ``before`` req/s until ``at``, then ``after`` req/s until ``end``."""
    arrivals: list[float] = []
    t = 0.0
    while t < end:
        arrivals.append(t)
        t += 1 / (before if t < at else after)
    n = len(arrivals)
    return Trace(tuple(arrivals), (1000,) * n, (200,) * n, START, "step")


def _isvc(**scaling: Any) -> InferenceService:
    return InferenceService.model_validate(
        {
            "metadata": {"name": "m", "namespace": "ns"},
            "spec": {
                "model": "meta-llama/Llama-3.1-8B-Instruct",
                "serving": {"image": "vllm"},
                "pricing": {"gpuHour": "2.00"},
                "scaling": {"minReplicas": 1, "maxReplicas": 12, "coldStartSeconds": 60, **scaling},
            },
        }
    )


def _operator_run(isvc: InferenceService, trace: Trace) -> tuple[list[int], OperatorScaler]:
    scaler = OperatorScaler(isvc, PROFILES["A100-80GB/8B"], trace.start, 1)
    result = run(trace, scaler.profile, scaler, initial=1, cold_start_median_s=60, first_decision_s=0)
    replicas = [n for _, n, _ in result.timeline]
    return replicas, scaler


def test_the_operator_decides_with_its_spec_and_status() -> None:
    trace = _step_trace(1.0, 20.0, 120.0, 600.0)
    metric = {"type": "RequestsInFlight", "target": 32}
    fast, fast_scaler = _operator_run(_isvc(metric=metric, maxScaleUpStep=4), trace)
    slow, _ = _operator_run(_isvc(metric=metric, maxScaleUpStep=1), trace)
    # the spec's step limit is what decide_replicas applies: +4 then +1 per decision
    assert max(b - a for a, b in itertools.pairwise(fast)) > 1
    assert max(b - a for a, b in itertools.pairwise(slow)) == 1
    # the decisions land in status as the controller writes them
    status = fast_scaler.status
    assert status.decisions and status.decisions[-1].reason in {"ScaleUp", "ScaleDown", "MaxReplicas"}
    assert status.desired_replicas == fast[-1] or status.desired_replicas >= 1
    assert status.recommendations


def test_a_timed_out_request_is_a_miss() -> None:
    trace = Trace(tuple(0.01 * i for i in range(300)), (4000,) * 300, (50,) * 300, START, "burst")
    result = run(trace, PROFILES["L4/8B"], StaticScaler(1), initial=1, cold_start_median_s=60, timeout_s=5.0)
    s = report.summarize(result, report.Costs(Decimal("1")), ttft_slo_s=2.0)
    assert s.failed > 0
    assert s.ttft_p99 == float("inf") and s.e2e_p99 == float("inf")
    assert s.slo_violating_minutes >= 1 and not s.meets_slo
    assert "miss" in report.table([s])
    assert json.loads(report.to_json([s]))["results"][0]["ttft_p99"] == "miss"


def _small_trace(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    rows = ["timestamp,prompt_tokens,output_tokens"]
    rows += [f"{i * 0.25:.2f},{800 + (i % 7) * 100},{100 + (i % 5) * 40}" for i in range(1200)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_cli_prints_one_table_with_the_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = aipolicy_main(
        [
            "simulate",
            "-f",
            str(SAMPLES),
            "--trace",
            str(_small_trace(tmp_path)),
            "--service",
            "team-a/llama-8b",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "team-a/llama-8b" in out
    for row in ("aipolicy (QueueDepth)", "static (", "HPA (QueueDepth 4/pod)", "KEDA (QueueDepth 4/pod)"):
        assert row in out


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "-f", str(SAMPLES), "--trace", str(_small_trace(tmp_path))]
    code = aipolicy_main([*args, "--service", "team-a/llama-8b", "--no-baselines", "--output", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    (service,) = data["services"]
    assert service["service"] == "team-a/llama-8b"
    assert service["results"][0]["label"] == "aipolicy (QueueDepth)"
    assert {"gpu_hours", "api_cost", "total_cost", "ttft_p99", "slo_violating_minutes"} <= set(
        service["results"][0]
    )


def test_cli_refuses_a_bad_trace_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,prompt_tokens,output_tokens\n0,10,10\n1,ten,10\n")
    code = aipolicy_main(["simulate", "-f", str(SAMPLES), "--trace", str(path)])
    assert code == 2
    assert f"{path}:3: column 2 (prompt_tokens): 'ten' is not a whole number" in capsys.readouterr().err


def test_cli_refuses_a_manifest_the_operator_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = yaml.safe_load((SAMPLES / "inferenceservice-vllm-gpu.yaml").read_text())
    body["spec"]["scaling"]["maxReplicas"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(body))
    code = aipolicy_main(["simulate", "-f", str(bad), "--trace", str(_small_trace(tmp_path))])
    assert code == 2
    assert "spec.scaling.maxReplicas: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_cli_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "run.png"
    args = ["simulate", "-f", str(SAMPLES), "--trace", str(_small_trace(tmp_path))]
    code = aipolicy_main([*args, "--service", "team-a/llama-8b", "--no-baselines", "--plot", str(png)])
    capsys.readouterr()
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_traffic_has_its_bursts() -> None:
    from aipolicy.whatif.traces import synthetic

    sizes = Trace((0.0,), (100,), (10,), START, "one")
    t = synthetic(hours=1, mean_rate=2.0, period_s=3600, amplitude=0.5, burst_every_s=600,
                  burst_factor=25, sizes=sizes, seed=1, start=START)  # fmt: skip
    per_second: dict[int, int] = {}
    for a in t.arrivals:
        per_second[int(a)] = per_second.get(int(a), 0) + 1
    assert max(per_second.values()) >= 25  # a one-second burst at 25x the mean of 2/s
    assert 0.7 * 7200 < len(t) < 1.5 * 7200


def test_cli_from_prometheus_needs_a_service_and_an_answer(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "-f", str(SAMPLES), "--from-prometheus", "http://127.0.0.1:1"]
    assert aipolicy_main(args) == 2
    assert "--from-prometheus needs --service NAMESPACE/NAME" in capsys.readouterr().err
    assert aipolicy_main([*args, "--service", "team-a/llama-8b", "--since", "1h"]) == 2
    assert "Prometheus did not answer" in capsys.readouterr().err
