#!/usr/bin/env bash
# Prometheus for the local cluster: Debian's package (2.42), which has the HTTP API we need.
# Installs it only when it is missing. Building Prometheus 3 from its Go module also works but
# adds ~15 minutes and a gigabyte of modules for nothing the tests use.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 || [[ -x /usr/bin/prometheus ]]; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "error: prometheus is missing; install it with 'sudo apt-get install -y prometheus'" >&2; exit 1
fi
echo "installing prometheus from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
# policy-rc.d keeps the package from starting a system-wide Prometheus of its own
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.aipolicy && chmod +x /usr/sbin/policy-rc.d.aipolicy
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  mv /usr/sbin/policy-rc.d.aipolicy /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT
else
  rm -f /usr/sbin/policy-rc.d.aipolicy
fi
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
