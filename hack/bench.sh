#!/usr/bin/env bash
# make bench: the pure-core benchmarks, then the live-cluster ones on the local cluster (started
# here and stopped afterwards, unless one already runs). Results go to BENCHMARKS.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
started=0
if ! hack/cluster.sh status 2>/dev/null | grep -q "kube-apiserver: running"; then
  hack/cluster.sh up
  started=1
fi
trap '[[ $started == 1 ]] && hack/cluster.sh down' EXIT
# shellcheck disable=SC1091
source "${CLUSTER_RUN:-$repo/.cluster}/env"
export PATH="$CLUSTER_BIN:$PATH"
.venv/bin/python -m bench --write BENCHMARKS.md --cluster
