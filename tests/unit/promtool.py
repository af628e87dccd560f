"""PromQL evaluated by Prometheus's own engine: `promtool test rules` over given series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

#: (expression, the samples expected at EVAL_TIME)
Case = tuple[str, list[dict[str, Any]]]
EVAL_TIME = "10m"


def expect_samples(tmp_path: Path, series: list[dict[str, Any]], cases: list[Case]) -> None:
    """Each expression, evaluated at EVAL_TIME over `series` (one sample a minute), gives exactly
    its samples; fails with promtool's report otherwise."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make prometheus` installs Debian's prometheus package")
    tests = [
        {
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                {"expr": expr, "eval_time": EVAL_TIME, "exp_samples": exp} for expr, exp in cases
            ],
        }
    ]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({"rule_files": [], "tests": tests}))
    result = subprocess.run(
        [promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
