#!/usr/bin/env bash
# A loopback-only Kubernetes cluster for the e2e tests and the demo; no Docker, no kubelet:
#   etcd + kube-apiserver (RBAC, default admission plugins) + kube-controller-manager +
#   kube-scheduler + kwok (fake GPU and CPU nodes, pods with a cold start) +
#   kube-state-metrics + Prometheus (Debian's), every one on 127.0.0.1.
#
#   hack/cluster.sh up | down | status | env | prometheus-stop | prometheus-start | prometheus-reload
#   hack/cluster.sh monitor-up: only Prometheus and kube-state-metrics, on the host, for the cluster
#     of $KUBECONFIG (kind, or one started elsewhere): the e2e fixtures' --cluster=kind|existing path
#
# CLUSTER_RUN (default <repo>/.cluster) holds pki/ logs/ pids/ data and `env` (ports, paths).
# Every process is started here and stopped by the pid recorded for it, never by name.
# Tunables: COLD_START_SECONDS (default pod ready delay, 3), GPUS_PER_NODE (4),
# SCRAPE_INTERVAL (Prometheus, 2s).
#
# Network hygiene: nothing here dials a pod, node or ClusterIP. Nodes have no addresses but
# Hostname=localhost; pods get 10.244.0.0/16 addresses that no one connects to; Prometheus scrapes
# only 127.0.0.1 targets (itself, kube-state-metrics, and file_sd targets the simulator writes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cmd="${1:-}"
CLUSTER_RUN="${CLUSTER_RUN:-$repo/.cluster}"
PKI="$CLUSTER_RUN/pki"; LOGS="$CLUSTER_RUN/logs"; PIDS="$CLUSTER_RUN/pids"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kube-state-metrics prometheus)
COLD_START_SECONDS="${COLD_START_SECONDS:-3}"
GPUS_PER_NODE="${GPUS_PER_NODE:-4}"
SCRAPE_INTERVAL="${SCRAPE_INTERVAL:-2s}"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(command -v prometheus || echo /usr/bin/prometheus)}"

log() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() {  # alive <component>: its recorded pid runs
  local f="$PIDS/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(<"$f")" 2>/dev/null
}

wait_for() {  # wait_for <what> <timeout-s> <pid-name> <command...>
  local what="$1" t="$2" comp="$3"; shift 3
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$comp"; then
      log "$what exited during start-up; last lines of $LOGS/$comp.log:"; tail -n 25 "$LOGS/$comp.log" >&2 || true
      return 1
    fi
    if (( SECONDS > end )); then
      log "timeout after ${t}s waiting for $what; last lines of $LOGS/$comp.log:"; tail -n 25 "$LOGS/$comp.log" >&2 || true
      return 1
    fi
    sleep 0.3
  done
  log "$what ready"
}

start() {  # start <name> <binary> <args...>   (stdout+stderr -> logs/<name>.log)
  local name="$1"; shift
  nohup "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

stop_one() {
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid=$(<"$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    # reap and wait until the pid is really gone, so ports are free on return
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

stop_all() {
  local i
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do stop_one "${COMPONENTS[$i]}"; done
}

check_binaries() {
  local b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kube-state-metrics; do
    [[ -x "$CLUSTER_BIN/$b" ]] || die "$CLUSTER_BIN/$b is missing: run 'make cluster-binaries' (hack/build-cluster-binaries.sh)"
  done
  "$CLUSTER_BIN/kube-apiserver" --version >/dev/null 2>&1 \
    || die "$CLUSTER_BIN/kube-apiserver does not run (corrupt?): delete $CLUSTER_BIN and run 'make cluster-binaries'"
  "$CLUSTER_BIN/etcd" --version >/dev/null 2>&1 \
    || die "$CLUSTER_BIN/etcd does not run (corrupt?): delete $CLUSTER_BIN and run 'make cluster-binaries'"
  [[ -x "$PROMETHEUS_BIN" ]] || die "prometheus is not installed: run 'make prometheus' (hack/install-prometheus.sh)"
}

gen_pki() {
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=aipolicy-local-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    sign() {  # sign <name> <subject> <x509 extensions>
      openssl req -newkey rsa:2048 -nodes -sha256 -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -sha256 -days 3650 -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign admin "/O=system:masters/CN=aipolicy-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    # serving certificate for the operator's admission webhook on 127.0.0.1 (caBundle = ca.crt)
    sign webhook "/CN=127.0.0.1" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

free_ports() {  # prints N distinct free loopback TCP ports
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
}

port_taken() { python3 -c 'import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"; }

write_kubeconfig() {
  cat >"$CLUSTER_RUN/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: aipolicy-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: aipolicy-admin
  user:
    client-certificate: $PKI/admin.crt
    client-key: $PKI/admin.key
contexts:
- name: aipolicy-local
  context: {cluster: aipolicy-local, user: aipolicy-admin}
current-context: aipolicy-local
KC
}

write_kwok_config() {  # KwokConfiguration + kwok's own node stages + our two-step pod stages
  {
    cat <<KW
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.244.0.0/16
  # set explicitly: kwok 0.8 leaves them 0 (and refuses to start) when a config file is given
  nodeLeaseParallelism: 4
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  podsOnNodeSyncParallelism: 2
KW
    for f in "$CLUSTER_BIN"/kwok-stages/node-*.yaml "$CLUSTER_BIN"/kwok-stages/pod-complete.yaml \
             "$CLUSTER_BIN"/kwok-stages/pod-delete.yaml; do
      echo "---"; cat "$f"
    done
    echo "---"
    sed "s/__READY_DELAY_MS__/$((COLD_START_SECONDS * 1000))/" "$here/kwok/pod-stages.yaml"
  } >"$CLUSTER_RUN/kwok.yaml"
}

write_prometheus_config() {
  mkdir -p "$CLUSTER_RUN/prometheus/targets" "$CLUSTER_RUN/prometheus/rules"
  cat >"$CLUSTER_RUN/prometheus/prometheus.yml" <<PC
# Generated by hack/cluster.sh. Only 127.0.0.1 targets: file_sd files in targets/ are written by
# the simulator and the tests (each target group may set __metrics_path__). Rule files in rules/
# (aipolicy's PrometheusRule spec, written by the tests) load on prometheus-reload.
global:
  scrape_interval: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
rule_files: ["$CLUSTER_RUN/prometheus/rules/*.yaml"]
scrape_configs:
- job_name: prometheus
  static_configs: [{targets: ["127.0.0.1:$PROM_PORT"]}]
- job_name: kube-state-metrics
  honor_labels: true
  static_configs: [{targets: ["127.0.0.1:$KSM_PORT"]}]
- job_name: loopback
  honor_labels: true
  file_sd_configs:
  - files: ["$CLUSTER_RUN/prometheus/targets/*.json"]
    refresh_interval: 1s
PC
}

start_prometheus() {
  alive prometheus && { log "prometheus already runs"; return 0; }
  # shellcheck disable=SC1091
  source "$CLUSTER_RUN/env"
  start prometheus "$PROMETHEUS_BIN" \
    --config.file="$CLUSTER_RUN/prometheus/prometheus.yml" \
    --storage.tsdb.path="$CLUSTER_RUN/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-lifecycle \
    --storage.tsdb.retention.time=2d --query.lookback-delta=30s
  wait_for prometheus 60 prometheus curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready"
}

preflight() {  # refuse before anything starts: nothing to clean up if this fails
  if compgen -G "$PIDS/*.pid" >/dev/null; then
    for c in "${COMPONENTS[@]}"; do
      alive "$c" && die "a cluster already runs from $CLUSTER_RUN ($c, pid $(<"$PIDS/$c.pid")): use it, or stop it with 'make cluster-down'"
    done
    rm -f "$PIDS"/*.pid   # stale pid files of a cluster that died
  fi
  check_binaries
}

up() {
  rm -rf "$CLUSTER_RUN"
  mkdir -p "$CLUSTER_RUN" "$LOGS" "$PIDS" "$CLUSTER_RUN/etcd" "$CLUSTER_RUN/kwok-home"
  gen_pki
  read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT KSM_PORT KSM_TELEMETRY_PORT PROM_PORT \
    < <(free_ports 9)
  for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT" "$KSM_PORT" "$KSM_TELEMETRY_PORT" "$PROM_PORT"; do
    port_taken "$p" && die "port 127.0.0.1:$p was taken between choosing and starting; run 'make cluster-up' again"
  done
  cat >"$CLUSTER_RUN/env" <<ENV
export KUBECONFIG=$CLUSTER_RUN/kubeconfig
export CLUSTER_RUN=$CLUSTER_RUN CLUSTER_BIN=$CLUSTER_BIN
export ETCD_PORT=$ETCD_PORT API_PORT=$API_PORT KCM_PORT=$KCM_PORT SCHED_PORT=$SCHED_PORT KWOK_PORT=$KWOK_PORT
export KSM_PORT=$KSM_PORT PROM_PORT=$PROM_PORT PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
export PROMETHEUS_TARGETS_DIR=$CLUSTER_RUN/prometheus/targets
export CLUSTER_CA=$PKI/ca.crt WEBHOOK_CERT=$PKI/webhook.crt WEBHOOK_KEY=$PKI/webhook.key
export COLD_START_SECONDS=$COLD_START_SECONDS GPUS_PER_NODE=$GPUS_PER_NODE
ENV
  write_kubeconfig
  local KC="$CLUSTER_RUN/kubeconfig"

  local etcd_extra=()
  "$CLUSTER_BIN/etcd" --help 2>&1 | grep -q -- '--unsafe-no-fsync' && etcd_extra+=(--unsafe-no-fsync=true)
  start etcd "$CLUSTER_BIN/etcd" \
    --name=node0 --data-dir="$CLUSTER_RUN/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="node0=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --listen-metrics-urls="" \
    --auto-compaction-retention=1 --quota-backend-bytes=8589934592 --log-level=warn "${etcd_extra[@]}"
  wait_for etcd 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

  # A loopback advertise address needs --endpoint-reconciler-type=none (kubernetes#121942, #138102).
  start kube-apiserver "$CLUSTER_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=Node,RBAC \
    --allow-privileged=true \
    --cert-dir="$CLUSTER_RUN/apiserver-certs" \
    --profiling=false --v="${CLUSTER_VERBOSITY:-1}"
  wait_for kube-apiserver 120 kube-apiserver curl -fsS --cacert "$PKI/ca.crt" "https://127.0.0.1:$API_PORT/readyz"

  start kube-controller-manager "$CLUSTER_BIN/kube-controller-manager" \
    --kubeconfig="$KC" --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$CLUSTER_RUN/kcm-certs" \
    --leader-elect=false --node-monitor-period=2s \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --use-service-account-credentials=false \
    --v="${CLUSTER_VERBOSITY:-1}"

  start kube-scheduler "$CLUSTER_BIN/kube-scheduler" \
    --kubeconfig="$KC" --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --cert-dir="$CLUSTER_RUN/sched-certs" \
    --leader-elect=false --v="${CLUSTER_VERBOSITY:-1}"

  write_kwok_config
  start kwok env KWOK_WORKDIR="$CLUSTER_RUN/kwok-home" HOME="$CLUSTER_RUN/kwok-home" "$CLUSTER_BIN/kwok" \
    --kubeconfig="$KC" --config="$CLUSTER_RUN/kwok.yaml" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-name=localhost --node-ip= --node-port="$KWOK_PORT" \
    --server-address="127.0.0.1:$KWOK_PORT" \
    --node-lease-duration-seconds=40

  # Pod labels of aipolicy's pods are exported so PromQL can join on them, as in a real cluster.
  start kube-state-metrics "$CLUSTER_BIN/kube-state-metrics" \
    --kubeconfig="$KC" --host=127.0.0.1 --port="$KSM_PORT" \
    --telemetry-host=127.0.0.1 --telemetry-port="$KSM_TELEMETRY_PORT" \
    --resources=pods,deployments,nodes,namespaces,services \
    --metric-labels-allowlist='pods=[aipolicy.dev/service],deployments=[aipolicy.dev/service]'

  write_prometheus_config
  start_prometheus

  wait_for kube-controller-manager 60 kube-controller-manager curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler 60 kube-scheduler curl -fsSk "https://127.0.0.1:$SCHED_PORT/healthz"
  wait_for kwok 60 kwok curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz"
  wait_for kube-state-metrics 60 kube-state-metrics curl -fsS "http://127.0.0.1:$KSM_PORT/healthz"
  # kcm's service account controller has run once 'default' exists (ServiceAccount admission needs it)
  wait_for "default ServiceAccount" 60 kube-controller-manager \
    "$CLUSTER_BIN/kubectl" --kubeconfig="$KC" -n default get serviceaccount default

  sed "s/__GPUS_PER_NODE__/$GPUS_PER_NODE/g" "$here/kwok/nodes.yaml" \
    | "$CLUSTER_BIN/kubectl" --kubeconfig="$KC" apply -f - >/dev/null
  wait_for "nodes Ready" 60 kwok "$CLUSTER_BIN/kubectl" --kubeconfig="$KC" wait --for=condition=Ready node --all --timeout=1s
  # kcm lifts the not-ready taint a moment after a node turns Ready; schedule nothing before that
  wait_for "node taints lifted" 60 kube-controller-manager bash -c \
    "! '$CLUSTER_BIN/kubectl' --kubeconfig='$KC' get nodes -o jsonpath='{.items[*].spec.taints[*].key}' | grep -q not-ready"
  log "cluster up: KUBECONFIG=$KC, Prometheus http://127.0.0.1:$PROM_PORT"
}

monitor_up() {  # Prometheus + kube-state-metrics on the host, for a cluster that is already there
  [[ -n "${KUBECONFIG:-}" && -f "$KUBECONFIG" ]] || die "monitor-up needs KUBECONFIG: the existing cluster's kubeconfig"
  [[ -x "$CLUSTER_BIN/kube-state-metrics" ]] || die "$CLUSTER_BIN/kube-state-metrics is missing: run 'make cluster-binaries'"
  [[ -x "$PROMETHEUS_BIN" ]] || die "prometheus is not installed: run 'make prometheus' (hack/install-prometheus.sh)"
  rm -rf "$CLUSTER_RUN"
  mkdir -p "$CLUSTER_RUN" "$LOGS" "$PIDS"
  read -r KSM_PORT KSM_TELEMETRY_PORT PROM_PORT < <(free_ports 3)
  cat >"$CLUSTER_RUN/env" <<ENV
export KUBECONFIG=$KUBECONFIG
export CLUSTER_RUN=$CLUSTER_RUN CLUSTER_BIN=$CLUSTER_BIN
export KSM_PORT=$KSM_PORT PROM_PORT=$PROM_PORT PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
export PROMETHEUS_TARGETS_DIR=$CLUSTER_RUN/prometheus/targets
ENV
  start kube-state-metrics "$CLUSTER_BIN/kube-state-metrics" \
    --kubeconfig="$KUBECONFIG" --host=127.0.0.1 --port="$KSM_PORT" \
    --telemetry-host=127.0.0.1 --telemetry-port="$KSM_TELEMETRY_PORT" \
    --resources=pods,deployments,nodes,namespaces,services \
    --metric-labels-allowlist='pods=[aipolicy.dev/service],deployments=[aipolicy.dev/service]'
  write_prometheus_config
  start_prometheus
  wait_for kube-state-metrics 60 kube-state-metrics curl -fsS "http://127.0.0.1:$KSM_PORT/healthz"
  log "monitoring up for $KUBECONFIG: Prometheus http://127.0.0.1:$PROM_PORT"
}

down() {
  if ! compgen -G "$PIDS/*.pid" >/dev/null; then
    log "no cluster runs from $CLUSTER_RUN; nothing to stop"
    return 0
  fi
  stop_all
  log "cluster stopped"
}

status() {
  local c
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then echo "$c: running (pid $(<"$PIDS/$c.pid"))"; else echo "$c: stopped"; fi
  done
}

source "$here/versions.env"
CLUSTER_BIN="${CLUSTER_BIN:-${AIPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipolicy}/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-ksm-$KSM_VERSION}"

case "$cmd" in
  up)
    preflight
    # from here on, a failure stops exactly what this run started
    trap 'rc=$?; if (( rc )); then log "start-up failed; stopping what was started"; stop_all; fi' EXIT
    up
    trap - EXIT ;;
  monitor-up)
    compgen -G "$PIDS/*.pid" >/dev/null && die "something already runs from $CLUSTER_RUN: stop it with '$0 down'"
    trap 'rc=$?; if (( rc )); then log "start-up failed; stopping what was started"; stop_all; fi' EXIT
    monitor_up
    trap - EXIT ;;
  down) down ;;
  status) status ;;
  env)  cat "$CLUSTER_RUN/env" ;;
  prometheus-stop)  stop_one prometheus; log "prometheus stopped" ;;
  prometheus-start) start_prometheus ;;
  prometheus-reload) source "$CLUSTER_RUN/env"; curl -fsS -X POST "$PROMETHEUS_URL/-/reload" ;;
  *)    echo "usage: $0 up|monitor-up|down|status|env|prometheus-stop|prometheus-start|prometheus-reload" >&2; exit 2 ;;
esac
