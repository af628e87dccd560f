"""The e2e tests' handles on the cluster: aipolicy.devcluster (Cluster, Prometheus, Simulator,
ManagedProcess, wait_until, free_port, ...), which bench/ drives too; named here so that the
tests import them from one place of their own."""

from aipolicy.devcluster import *  # noqa: F403
from aipolicy.devcluster import __all__ as __all__
