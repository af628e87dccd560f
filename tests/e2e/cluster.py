"""The e2e tests' handles on the cluster: aipolicy.devcluster, which bench/ drives too; named
here so that tests import them from one place of their own."""

from aipolicy.devcluster import (
    REPO,
    Cluster,
    ManagedProcess,
    Prometheus,
    Simulator,
    free_port,
    parse_env_file,
    python_module,
    started,
    wait_until,
)

__all__ = [
    "REPO",
    "Cluster",
    "ManagedProcess",
    "Prometheus",
    "Simulator",
    "free_port",
    "parse_env_file",
    "python_module",
    "started",
    "wait_until",
]
