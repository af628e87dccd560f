#!/usr/bin/env bash
# Build helm from its Go module (Go module proxy only; no release download), for the chart tests.
# Cached outside the work tree, keyed by its version: a no-op when it exists. Prints helm's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"
CACHE_ROOT="${AIPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipolicy}"
HELM_BIN="${HELM_BIN:-$CACHE_ROOT/bin/helm-$HELM_VERSION-v2}"  # -v2: stamped with its Kubernetes version
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -modcacherw"

if [[ -x "$HELM_BIN/helm" ]]; then echo "$HELM_BIN/helm"; exit 0; fi
command -v go >/dev/null || { echo "error: go is not installed; it is needed to build helm" >&2; exit 1; }
mkdir -p "$HELM_BIN"
printf '[build %(%H:%M:%S)T] building helm v%s\n' -1 "$HELM_VERSION" >&2
# Stamped as helm's Makefile does: its version, and the Kubernetes version `helm template` and
# `helm lint` assume (1.<minor of its client-go>; unstamped it is 1.20, older than any chart wants).
gomod=$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
kminor=$(sed -nE 's#^[[:space:]]*k8s\.io/client-go v0\.([0-9]+)\..*#\1#p' "$gomod" | head -n1)
[[ -n "$kminor" ]] || { echo "error: no k8s.io/client-go in $gomod" >&2; exit 1; }
ld="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$kminor"
done
GOBIN="$HELM_BIN/.tmp" go install -trimpath -ldflags="$ld" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
mv "$HELM_BIN/.tmp/helm" "$HELM_BIN/helm"; rmdir "$HELM_BIN/.tmp"
echo "$HELM_BIN/helm"
