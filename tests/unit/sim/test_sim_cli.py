"""The command line: simulate prints a table; bad input exits 2 with a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipolicy.sim.__main__ import build_parser, main


def test_simulate_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--window", "0", "300", "--policy", "fixed", "--replicas", "2",
                 "--gpu-hour-rate", "3.10", "--ttft-slo", "1.5"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "CC-BY 4.0" in out
    assert "Splitwise" in out
    assert "cost @ 3.10/GPU-hour" in out
    assert "SLO-violation minutes (p95 TTFT > 1.5 s)" in out


def test_bad_trace_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n")
    assert main(["simulate", "--trace", str(bad)]) == 2
    assert "t.csv:2: bad TIMESTAMP" in capsys.readouterr().err


def test_bad_rate_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--gpu-hour-rate", "lots"])


def test_serve_arguments() -> None:
    args = build_parser().parse_args(
        ["serve", "--kubeconfig", "kc", "--port", "0", "--targets-dir", "/tmp/t", "--no-cluster"]
    )
    assert (args.kubeconfig, args.port, args.targets_dir, args.no_cluster) == (
        "kc", 0, Path("/tmp/t"), True,
    )  # fmt: skip


def test_serve_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("services: {nope: {}}\n")
    assert main(["serve", "--targets-dir", str(tmp_path), "--config", str(cfg)]) == 2
    assert "namespace/name" in capsys.readouterr().err
