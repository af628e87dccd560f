#!/usr/bin/env bash
# podman (with runc) and mmdebstrap from Debian's packages, for `make image`: installs only what is
# missing. Debian bookworm: podman 4.3.1 (buildah inside), runc 1.1.5, mmdebstrap 1.3.5.
# crun is not enough here (it refuses the host's hybrid cgroups), hence runc.
set -euo pipefail
missing=()
for tool in podman:podman runc:runc mmdebstrap:mmdebstrap newuidmap:uidmap; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
[[ -d /usr/lib/cni ]] || missing+=(containernetworking-plugins)
(( ${#missing[@]} )) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "error: missing ${missing[*]}; install with 'sudo apt-get install -y --no-install-recommends ${missing[*]}'" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
# another apt run (another checkout's make) may hold the lock: wait for it rather than fail
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get update -qq >/dev/null || true
apt_get install -y -qq --no-install-recommends podman runc mmdebstrap uidmap containernetworking-plugins >/dev/null
