"""The copies of the CRDs in the Helm chart (charts/aipolicy/crds) and in the kustomize base
(manifests/base/crds: kustomize refuses files outside its folder) are the models' CRDs, up to date:
`make crds` writes them with crds/, and this fails when a copy is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipolicy.api import crd
from aipolicy.cli import main

REPO = Path(__file__).resolve().parents[2]
COPIES = [REPO / "charts" / "aipolicy" / "crds", REPO / "manifests" / "base" / "crds"]


@pytest.mark.parametrize("copy", COPIES, ids=lambda p: str(p.relative_to(REPO)))
@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_crd_copies_are_up_to_date(kind: crd.Kind, copy: Path) -> None:
    path = copy / f"aipolicy.dev_{kind.plural}.yaml"
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == crd.render(kind), f"{path} is stale: run `make crds` and commit it"


@pytest.mark.parametrize("copy", COPIES, ids=lambda p: str(p.relative_to(REPO)))
def test_copies_hold_only_the_generated_crds(copy: Path) -> None:
    expected = {f"aipolicy.dev_{kind.plural}.yaml" for kind in crd.KINDS}
    assert {p.name for p in copy.iterdir()} == expected


def test_crds_command_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "crds", tmp_path / "chart-crds"
    assert main(["crds", "--output", str(first), "--output", str(second)]) == 0
    for kind in crd.KINDS:
        name = f"aipolicy.dev_{kind.plural}.yaml"
        assert (first / name).read_text() == (second / name).read_text() == crd.render(kind)
