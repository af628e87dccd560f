"""The shipped monitoring: rules that promtool accepts and whose alerts fire (and stay quiet) as
their unit cases say, a runbook for every alert, and dashboard queries that parse."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[2] / "manifests" / "monitoring"
RUNBOOKS = MONITORING.parents[1] / "docs" / "runbooks.md"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make prometheus` installs Debian's prometheus package")
    return found


def _rule_groups() -> dict[str, Any]:
    rule: dict[str, Any] = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    return dict(rule["spec"])


def _alerts() -> list[dict[str, Any]]:
    return [r for group in _rule_groups()["groups"] for r in group["rules"] if "alert" in r]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule_groups()))
    result = _run("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_as_its_unit_cases_say(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule_groups()))
    shutil.copy(MONITORING / "rules.test.yaml", tmp_path / "rules.test.yaml")
    result = _run("test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    cases = yaml.safe_load((MONITORING / "rules.test.yaml").read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - fires == set(), "alerts never seen firing"
    assert names - quiet == set(), "alerts never seen quiet"


def test_every_alert_links_to_a_runbook_section_that_exists() -> None:
    headings = set(re.findall(r"^## (\S+)$", RUNBOOKS.read_text(), flags=re.MULTILINE))
    for alert in _alerts():
        name = alert["alert"]
        assert name in headings, f"docs/runbooks.md has no section for {name}"
        assert alert["annotations"]["runbook_url"].endswith(f"docs/runbooks.md#{name.lower()}")


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [(panel["title"], t["expr"]) for panel in dashboard["panels"] for t in panel["targets"]]


def test_the_dashboard_has_the_panels_a_platform_team_needs() -> None:
    titles = {title for title, _ in _dashboard_queries()}
    assert titles == {
        "Spend against budget, with forecast",
        "Cost per 1,000 requests by model",
        "Time to first token",
        "Error rate by model",
        "Mode and fallback timeline",
        "Idle GPUs and their cost per hour",
    }


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # promtool has no "parse this expression" command; a recording rule per query is parsed
    # by `check rules` with the real PromQL parser. Grafana's variables get typical values.
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": expr.replace("$__rate_interval", "1m").replace("$namespace", ".*"),
        }
        for i, (_, expr) in enumerate(_dashboard_queries())
    ]
    groups = {"groups": [{"name": "dashboard", "rules": rules}]}
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(groups))
    result = _run("check", "rules", "dashboard-rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kustomization_lists_every_manifest_of_the_folder() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"]) | {
        f for gen in kustomization["configMapGenerator"] for f in gen["files"]
    }
    on_disk = {p.name for p in MONITORING.iterdir()} - {"kustomization.yaml", "rules.test.yaml"}
    assert listed == on_disk
