#!/usr/bin/env bash
# Install a Debian package when its command is missing: install-debian-package.sh COMMAND PACKAGE.
# Shared by install-prometheus.sh, install-alertmanager.sh and install-chromium.sh. A service the
# package ships is never started system-wide (policy-rc.d): the tests start their own instances.
set -euo pipefail
command=$1 package=$2
if command -v "$command" >/dev/null 2>&1 || [[ -x /usr/bin/$command ]]; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "error: $command is missing; install it with 'sudo apt-get install -y $package'" >&2; exit 1
fi
echo "installing $package from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.aipolicy && chmod +x /usr/sbin/policy-rc.d.aipolicy
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  mv /usr/sbin/policy-rc.d.aipolicy /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT
else
  rm -f /usr/sbin/policy-rc.d.aipolicy
fi
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "$package" >/dev/null
