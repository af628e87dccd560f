"""`aipolicy report` on a real cluster: the simulator's traffic in Prometheus, the operator's
status in the API, the report's numbers checked against PromQL this file asks itself, and the
HTML page opened in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.builders import steady_gpu_service
from tests.e2e.cluster import REPO, Cluster, Prometheus, Simulator, python_module, wait_until
from tests.e2e.conftest import OperatorFactory

TRAFFIC = {"kind": "constant", "rate": 4, "duration": 600, "promptTokens": 200, "outputTokens": 60}


def _report(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PROMETHEUS_URL": cluster.prometheus_url or "",
    }
    return subprocess.run(
        python_module("aipolicy", "report", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def _at(prometheus: Prometheus, promql: str, moment: datetime) -> float | None:
    qs = urllib.parse.urlencode({"query": promql, "time": moment.timestamp()})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{qs}", timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def served(
    cluster: Cluster,
    module_namespace: str,
    simulator: Simulator,
    module_prometheus: Prometheus,
    module_operator_process: OperatorFactory,
) -> Iterator[str]:
    """A self-hosted service with a minute and more of steady traffic in Prometheus: one for the
    module, since every test here only reads it (the two minutes of traffic are most of the time)."""
    namespace = module_namespace
    module_operator_process(namespace)
    cluster.apply(steady_gpu_service("chat", labels={"team": "report-e2e"}), namespace)
    wait_until(
        "the service's pod Ready",
        lambda: (
            (cluster.get("inferenceservice", "chat", namespace) or {}).get("status", {}).get("readyReplicas")
        ),
        timeout=90,
    )
    simulator.traffic(namespace, "chat", TRAFFIC)
    wait_until(
        "two minutes of the service's requests in Prometheus",
        lambda: (
            (
                module_prometheus.value(
                    f'sum(increase(vllm:request_success_total{{namespace="{namespace}"}}[2m]))'
                )
                or 0
            )
            > 200
        ),
        timeout=240,
        interval=5,
    )
    try:
        yield namespace
    finally:
        simulator.stop_traffic(namespace, "chat")


def test_the_report_counts_what_prometheus_counts(
    cluster: Cluster, served: str, prometheus: Prometheus
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    result = _report(cluster, "-n", served, "--from", (end - timedelta(minutes=3)).isoformat(),
                     "--to", end.isoformat(), "-o", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["models"][0]
    selector = f'namespace="{served}",service="chat"'
    requests = _at(prometheus, f"sum(increase(vllm:request_success_total{{{selector}}}[180s]))", end)
    assert requests is not None and model["requests"] == pytest.approx(requests, rel=0.01)
    gpu_hours = _at(
        prometheus,
        f'sum_over_time((sum(kube_pod_container_resource_requests{{namespace="{served}",resource="nvidia_com_gpu"}}))'
        "[179999ms:15s]) * 15 / 3600",
        end,
    )
    assert gpu_hours is not None and gpu_hours > 0
    expected_per_1k = gpu_hours * 2.00 / requests * 1000
    assert float(model["cost_per_1k_requests"]) == pytest.approx(expected_per_1k, rel=0.01)
    assert model["ttft_p95"] is not None and model["ttft_p95"] > 0
    assert model["error_rate"] == pytest.approx(0, abs=1e-9)


def test_a_window_with_no_data_says_no_data_never_zero(cluster: Cluster, served: str) -> None:
    # The hour before this test's namespace existed: Prometheus knows nothing of its service.
    end = datetime.now(UTC) - timedelta(hours=1)
    result = _report(cluster, "-n", served, "--to", end.isoformat(), "--since", "10m")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"{served}/chat"))
    assert row.split()[2:4] == ["no", "data"], row


def test_a_team_label_that_matches_nothing_is_an_error_naming_it(
    cluster: Cluster, crds_installed: None
) -> None:
    result = _report(cluster, "--team-label", "team=nobody-here")
    assert result.returncode == 2
    assert "team=nobody-here" in result.stderr


def test_a_period_in_the_future_is_refused(cluster: Cluster, crds_installed: None) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    result = _report(cluster, "-n", "default", "--to", later)
    assert result.returncode == 2 and "in the future" in result.stderr


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing: `make test` installs Debian's chromium (hack/install-chromium.sh)")
    return found


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]  # fmt: skip


def test_the_html_report_draws_its_charts_in_chromium(cluster: Cluster, served: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = _report(cluster, "-n", served, "--since", "5m", "-o", "html", "--file", str(page))
    assert result.returncode == 0, result.stderr
    profile = tmp_path / "profile"
    common = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the browser parsed the page into charts with points: cost per 1,000 requests over time,
    # and the TTFT distribution's bars
    assert 'class="series"' in dom.stdout and 'class="bar"' in dom.stdout
    assert "CONSOLE" not in dom.stderr and "Uncaught" not in dom.stderr
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert _coloured_pixels(shot) > 1000, "the screenshot is blank: no chart drew"


def _coloured_pixels(png: Path) -> int:
    """Pixels that are neither white nor grey: the charts' coloured lines and bars."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(rgb.width * rgb.height) or []
        return sum(count for count, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 60)
