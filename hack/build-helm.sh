#!/usr/bin/env bash
# Build helm from its Go module (Go module proxy only; no release download), for the chart tests.
# Cached outside the work tree, keyed by its version: a no-op when it exists. Prints helm's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"
CACHE_ROOT="${AIPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipolicy}"
HELM_BIN="${HELM_BIN:-$CACHE_ROOT/bin/helm-$HELM_VERSION}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -modcacherw"

if [[ -x "$HELM_BIN/helm" ]]; then echo "$HELM_BIN/helm"; exit 0; fi
command -v go >/dev/null || { echo "error: go is not installed; it is needed to build helm" >&2; exit 1; }
mkdir -p "$HELM_BIN"
printf '[build %(%H:%M:%S)T] building helm v%s\n' -1 "$HELM_VERSION" >&2
# the version is stamped as the release build does, so `helm version` tells the truth
GOBIN="$HELM_BIN/.tmp" go install -trimpath \
  -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
mv "$HELM_BIN/.tmp/helm" "$HELM_BIN/helm"; rmdir "$HELM_BIN/.tmp"
echo "$HELM_BIN/helm"
