#!/usr/bin/env bash
# Alertmanager for the e2e tests of budget notifications: Debian's prometheus-alertmanager
# package (0.25). Installs it only when it is missing, the same way hack/install-prometheus.sh
# installs Prometheus; the tests start their own instance on 127.0.0.1 (no clustering).
set -euo pipefail
if command -v prometheus-alertmanager >/dev/null 2>&1 || [[ -x /usr/bin/prometheus-alertmanager ]]; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "error: alertmanager is missing; install it with 'sudo apt-get install -y prometheus-alertmanager'" >&2; exit 1
fi
echo "installing prometheus-alertmanager from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
# policy-rc.d keeps the package from starting a system-wide Alertmanager of its own
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.aipolicy && chmod +x /usr/sbin/policy-rc.d.aipolicy
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  mv /usr/sbin/policy-rc.d.aipolicy /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT
else
  rm -f /usr/sbin/policy-rc.d.aipolicy
fi
apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
