#!/usr/bin/env bash
# Headless Chromium for the report's browser test: Debian's package. Installs it only when missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "error: chromium is missing; install it with 'sudo apt-get install -y chromium'" >&2; exit 1
fi
echo "installing chromium from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 chromium >/dev/null
