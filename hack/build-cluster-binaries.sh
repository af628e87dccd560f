#!/usr/bin/env bash
# Build the local test cluster's binaries from their Go modules (Go module proxy only; no release
# downloads): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and
# kube-state-metrics. Prometheus comes from Debian (see hack/install-prometheus.sh).
#
# Cached outside the work tree, keyed by every version, so a fresh clone (CI) reuses a build made
# earlier on the same machine. A no-op when "$CLUSTER_BIN/.complete" exists. Prints the bin dir.
#
# Why a wrapper module: k8s.io/kubernetes' go.mod requires its staging modules at v0.0.0 and replaces
# them with ./staging paths, so `go install k8s.io/kubernetes/cmd/...@v1.X.Y` is refused. A module
# that requires k8s.io/kubernetes and replaces each staging module with its published v0.X.Y works
# (kubernetes/kubernetes#79384). etcd has ../ replaces in its go.mod: same trick, without replaces.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "$here/versions.env"

CACHE_ROOT="${AIPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipolicy}"
CLUSTER_BIN="${CLUSTER_BIN:-$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-ksm-$KSM_VERSION}"
WORK="$CACHE_ROOT/gowork"

export GOTOOLCHAIN=local      # fail loudly rather than fetch another Go
export CGO_ENABLED=0          # static binaries, as the official releases are
export GOFLAGS="${GOFLAGS:-} -modcacherw"

if [[ -f "$CLUSTER_BIN/.complete" ]]; then echo "$CLUSTER_BIN"; exit 0; fi
command -v go >/dev/null || { echo "error: go is not installed; it is needed to build the local cluster" >&2; exit 1; }
mkdir -p "$CLUSTER_BIN" "$WORK"
log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

build_kubernetes() {
  local minor staging_ver kdir kgomod mods gd ld bdate p
  minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  staging_ver="v0.${K8S_VERSION#1.}"
  kdir="$WORK/k8s-$K8S_VERSION"
  if [[ ! -f "$kdir/.tidy" ]]; then
    rm -rf "$kdir"; mkdir -p "$kdir"; cd "$kdir"
    go mod init local.invalid/k8s-build >/dev/null 2>&1
    log "resolving k8s.io/kubernetes@v$K8S_VERSION"
    kgomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
             | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    mods=$(sed -nE 's#^[[:space:]]*(k8s\.io/[A-Za-z0-9._-]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\1#p' "$kgomod")
    [[ -n "$mods" ]] || { echo "error: no staging replaces found in $kgomod" >&2; exit 1; }
    for m in $mods; do go mod edit -replace="$m=$m@$staging_ver"; done
    gd=$(sed -nE 's#^godebug[[:space:]]+(default=go[0-9.]+)[[:space:]]*$#\1#p' "$kgomod" | head -n1)
    if [[ -n "$gd" ]]; then go mod edit -godebug="$gd"; fi
    go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
    for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
      go mod edit -tool="k8s.io/kubernetes/cmd/$c"
    done
    log "go mod tidy (kubernetes)"
    go mod tidy
    touch .tidy
  fi
  cd "$kdir"
  bdate=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ld="-s -w"
  # Release builds stamp both packages; without it `kubectl version` says v0.0.0-master.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$bdate"
  done
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [[ -x "$CLUSTER_BIN/$c" ]] && continue
    log "building $c"
    go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$ld" -o "$CLUSTER_BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$CLUSTER_BIN/$c.tmp" "$CLUSTER_BIN/$c"
  done
}

build_etcd() {
  local edir="$WORK/etcd-$ETCD_VERSION"
  [[ -x "$CLUSTER_BIN/etcd" ]] && return 0
  if [[ ! -f "$edir/.tidy" ]]; then
    rm -rf "$edir"; mkdir -p "$edir"; cd "$edir"
    go mod init local.invalid/etcd-build >/dev/null 2>&1
    go mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION" -tool=go.etcd.io/etcd/server/v3
    log "go mod tidy (etcd)"
    go mod tidy
    touch .tidy
  fi
  cd "$edir"
  log "building etcd"
  go build -trimpath -ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
    -o "$CLUSTER_BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$CLUSTER_BIN/etcd.tmp" "$CLUSTER_BIN/etcd"
}

build_kwok() {
  local stages
  if [[ ! -x "$CLUSTER_BIN/kwok" ]]; then
    log "building kwok"
    GOBIN="$CLUSTER_BIN" go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  fi
  # Stages are version-bound: take them from the same module version as the binary.
  stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  mkdir -p "$CLUSTER_BIN/kwok-stages"
  cp "$stages/node/fast/node-initialize.yaml" \
     "$stages/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
     "$stages/pod/fast/pod-complete.yaml" "$stages/pod/fast/pod-delete.yaml" \
     "$CLUSTER_BIN/kwok-stages/"
  chmod -R u+w "$CLUSTER_BIN/kwok-stages"
}

build_kube_state_metrics() {
  [[ -x "$CLUSTER_BIN/kube-state-metrics" ]] && return 0
  # A wrapper module rather than `go install ...@v`: the proxy refuses the module's version list,
  # which `go install` reads to check for deprecation.
  local sdir="$WORK/ksm-$KSM_VERSION"
  if [[ ! -f "$sdir/.tidy" ]]; then
    rm -rf "$sdir"; mkdir -p "$sdir"; cd "$sdir"
    go mod init local.invalid/ksm-build >/dev/null 2>&1
    go mod edit -require="k8s.io/kube-state-metrics/v2@v$KSM_VERSION" -tool=k8s.io/kube-state-metrics/v2
    log "go mod tidy (kube-state-metrics)"
    go mod tidy
    touch .tidy
  fi
  cd "$sdir"
  log "building kube-state-metrics"
  go build -trimpath -ldflags="-s -w" -o "$CLUSTER_BIN/kube-state-metrics.tmp" k8s.io/kube-state-metrics/v2
  mv "$CLUSTER_BIN/kube-state-metrics.tmp" "$CLUSTER_BIN/kube-state-metrics"
}

build_etcd
build_kwok
build_kube_state_metrics
build_kubernetes

"$CLUSTER_BIN/kube-apiserver" --version >&2
touch "$CLUSTER_BIN/.complete"
echo "$CLUSTER_BIN"
