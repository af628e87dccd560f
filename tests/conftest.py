"""Options shared by the unit and e2e suites."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aipolicy")
    group.addoption(
        "--cluster",
        choices=("local", "kind", "existing"),
        default="local",
        help="local: start the loopback cluster (hack/cluster.sh); kind: pytest-kind (needs Docker); "
        "existing: use KUBECONFIG and PROMETHEUS_URL",
    )
    group.addoption(
        "--cluster-bin",
        default=None,
        help="directory of the local cluster's binaries (default: hack/build-cluster-binaries.sh's)",
    )
