#!/usr/bin/env bash
# Build hack/health (Argo CD's Lua VM and kstatus judging aipolicy objects, for the tests) from its
# Go module; cached outside the work tree, keyed by its sources, so an unchanged tree is a no-op.
# Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${AIPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipolicy}"
key=$(cat "$here/health/go.mod" "$here/health/go.sum" "$here/health/main.go" | sha256sum | cut -c1-12)
out="$CACHE_ROOT/bin/health-$key/health"
if [[ -x "$out" ]]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "error: go is not installed; it is needed to build hack/health" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
cd "$here/health"
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -modcacherw -mod=readonly" \
  go build -trimpath -ldflags="-s -w" -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "$out"
