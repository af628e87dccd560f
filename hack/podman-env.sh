# Sourced by hack/image.sh and the image e2e fixture's shell: podman with a private config that
# works on these machines (see hack/image.sh). Exports CONTAINERS_CONF and CONTAINERS_STORAGE_CONF.
_podman_root="${AIPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipolicy}/podman"
mkdir -p "$_podman_root"
cat >"$_podman_root/storage.conf.$$" <<CONF
[storage]
driver = "overlay"
graphroot = "$_podman_root/storage"
runroot = "$_podman_root/run"
CONF
cat >"$_podman_root/containers.conf.$$" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$_podman_root/storage.conf.$$" "$_podman_root/storage.conf"
mv "$_podman_root/containers.conf.$$" "$_podman_root/containers.conf"
export CONTAINERS_STORAGE_CONF="$_podman_root/storage.conf" CONTAINERS_CONF="$_podman_root/containers.conf"
unset _podman_root
