#!/usr/bin/env bash
# Keep the --cluster=existing path alive (issue 12): start a local cluster apart, as a user's
# cluster would be, then run a few e2e tests against it with --cluster=existing and only its
# KUBECONFIG; the fixtures start Prometheus, kube-state-metrics and the simulator on the host, as
# they would for kind. The cluster is stopped by pid at the end, pass or fail.
#   hack/e2e-existing.sh [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
: "${CLUSTER_BIN:?CLUSTER_BIN must name the cluster binaries (make sets it)}"
run="$(mktemp -d /tmp/aipolicy-existing-XXXXXX)"
cleanup() { CLUSTER_RUN="$run" "$here/cluster.sh" down || true; rm -rf "$run"; }
trap cleanup EXIT
CLUSTER_RUN="$run" CLUSTER_BIN="$CLUSTER_BIN" "$here/cluster.sh" up
cd "$repo"
# nothing of the cluster's own env but its kubeconfig: not its Prometheus, not its run folder
env -u PROMETHEUS_URL -u PROMETHEUS_TARGETS_DIR -u CLUSTER_RUN KUBECONFIG="$run/kubeconfig" \
  PATH="$CLUSTER_BIN:$PATH" \
  .venv/bin/pytest --cluster=existing --cluster-bin="$CLUSTER_BIN" -p no:cacheprovider \
  "tests/e2e/test_inferenceservice_children.py::test_a_self_hosted_service_gets_a_gpu_deployment_and_a_front_door" \
  "tests/e2e/test_simulator.py::test_an_injected_fault_shows_in_error_rate_and_latency_and_clears" \
  "tests/e2e/test_image.py::test_the_service_account_reads_no_secret_and_writes_only_what_it_owns" \
  "$@"
