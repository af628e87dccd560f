"""The Helm chart's CRDs (charts/aipolicy/crds) are the models' CRDs, up to date: `make crds` writes
them with crds/, and this fails when either copy is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipolicy.api import crd
from aipolicy.cli import main

CHART_CRDS = Path(__file__).resolve().parents[2] / "charts" / "aipolicy" / "crds"


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_chart_crds_are_up_to_date(kind: crd.Kind) -> None:
    path = CHART_CRDS / f"aipolicy.dev_{kind.plural}.yaml"
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == crd.render(kind), f"{path} is stale: run `make crds` and commit it"


def test_chart_has_only_the_generated_crds() -> None:
    expected = {f"aipolicy.dev_{kind.plural}.yaml" for kind in crd.KINDS}
    assert {p.name for p in CHART_CRDS.iterdir()} == expected


def test_crds_command_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "crds", tmp_path / "chart-crds"
    assert main(["crds", "--output", str(first), "--output", str(second)]) == 0
    for kind in crd.KINDS:
        name = f"aipolicy.dev_{kind.plural}.yaml"
        assert (first / name).read_text() == (second / name).read_text() == crd.render(kind)
