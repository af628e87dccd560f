#!/usr/bin/env bash
# Build the aipolicy container image with Debian's podman, with no registry and no network inside
# the build (`make image`). Prints the image name.
#
#   1. podman/runc/mmdebstrap from Debian if missing (hack/install-podman.sh);
#   2. podman runs with a private config: runc (crun refuses this host's hybrid cgroups), overlay
#      storage under the cache, lowered ulimits (root here lacks CAP_SYS_RESOURCE), no systemd;
#   3. the base image (BASE, default localhost/aipolicy-base:bookworm) is a Debian rootfs made by
#      mmdebstrap and imported, since nothing can be pulled here. Its tarball is cached, keyed by
#      the suite, the packages and this script's base recipe, so a warm run skips it;
#   4. the dependency wheels are downloaded on the host (for the base's Python) into a cached
#      folder keyed by the dependencies, and aipolicy's own wheel is built reproducibly; both are
#      copied into build/image/, the only part of the repository the build sees (.containerignore);
#   5. `podman build --network=host` of the Dockerfile; unchanged layers come from the cache, and
#      an image labelled with the same input key (base, wheels, sources, Dockerfile) is not
#      rebuilt at all, so a warm `make image` takes under a second.
#
# Env: IMAGE (default localhost/aipolicy:dev), BASE (an existing image, e.g. python:3.12-slim on a
# machine with a registry: skips step 3), AIPOLICY_CACHE, PYTHON (host Python for pip).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
CACHE_ROOT="${AIPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aipolicy}"
IMAGE="${IMAGE:-localhost/aipolicy:dev}"
SUITE="${DEBIAN_SUITE:-bookworm}"
BASE_PACKAGES="python3,python3-venv,ca-certificates"
PYTHON="${PYTHON:-python3}"
log() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

"$here/install-podman.sh"
# shellcheck source=hack/podman-env.sh
source "$here/podman-env.sh"

# ---- 3. the base image ----
if [[ -z "${BASE:-}" ]]; then
  # the key changes with the suite, the packages or the recipe (mmdebstrap's mirror is a snapshot
  # of the day: delete the tarball to refresh it)
  base_key=$(printf '%s\n' "$SUITE" "$BASE_PACKAGES" "minbase-v2" | sha256sum | cut -c1-12)
  BASE="localhost/aipolicy-base:$SUITE-$base_key"
  base_tar="$CACHE_ROOT/image/base-$SUITE-$base_key.tar"
  if ! podman image exists "$BASE"; then
    if [[ ! -s "$base_tar" ]]; then
      log "making the $SUITE base rootfs with mmdebstrap (once; cached in $base_tar)"
      mkdir -p "$(dirname "$base_tar")"
      # no translations, manuals or docs (the copyright files stay); no apt lists or caches
      mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
        "$SUITE" "${base_tar%.tar}.tmp.tar"   # mmdebstrap picks the format by extension
      mv "${base_tar%.tar}.tmp.tar" "$base_tar"
    fi
    log "importing $base_tar as $BASE"
    podman import -q --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$base_tar" "$BASE" >/dev/null
  fi
fi

# ---- 4. wheels for the base's Python ----
base_id=$(podman image inspect --format '{{.Id}}' "$BASE" 2>/dev/null || true)
[[ -n "$base_id" ]] || { podman pull -q "$BASE" >/dev/null; base_id=$(podman image inspect --format '{{.Id}}' "$BASE"); }
py_tag_file="$CACHE_ROOT/image/python-of-${base_id:0:16}"
if [[ ! -s "$py_tag_file" ]]; then
  mkdir -p "$(dirname "$py_tag_file")"
  podman run --rm --network=host --entrypoint python3 "$BASE" \
    -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")' >"$py_tag_file"
fi
py_tag=$(<"$py_tag_file")
deps=$("$PYTHON" - "$repo/pyproject.toml" <<'PY'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))
PY
)
arch=$(uname -m)
wheels_key=$(printf '%s\n' "$deps" "cp$py_tag" "$arch" | sha256sum | cut -c1-12)
wheels="$CACHE_ROOT/image/wheels-cp$py_tag-$wheels_key"
if [[ ! -f "$wheels/.complete" ]]; then
  log "downloading the dependency wheels for CPython $py_tag ($wheels)"
  rm -rf "$wheels"; mkdir -p "$wheels"
  printf '%s\n' "$deps" >"$wheels/requirements.txt"
  # every manylinux up to bookworm's glibc (2.36): pip does not expand a given platform itself
  platforms=(--platform any --platform "manylinux2014_$arch")
  for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version "$py_tag" --implementation cp --abi "cp$py_tag" --abi abi3 --abi none \
    "${platforms[@]}" \
    -d "$wheels" -r "$wheels/requirements.txt"
  touch "$wheels/.complete"
fi
# aipolicy's own wheel, cached by its sources; SOURCE_DATE_EPOCH makes hatchling write the same
# bytes for the same sources, so the layer cache holds too
app_key=$(cd "$repo" && find operator pyproject.toml README.md -type f ! -path '*/__pycache__/*' -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
app="$CACHE_ROOT/image/app-$app_key"
if [[ ! -f "$app/.complete" ]]; then
  log "building aipolicy's wheel"
  rm -rf "$app"; mkdir -p "$app"
  SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps \
    -w "$app" "$repo" >/dev/null
  touch "$app/.complete"
  # keep the few latest source states' wheels
  find "$CACHE_ROOT/image" -maxdepth 1 -name 'app-*' -type d -printf '%T@ %p\n' | sort -rn | tail -n +6 \
    | cut -d' ' -f2- | xargs -r rm -rf
fi

# ---- 5. the image ----
# Everything the image is made of; an image labelled with the same key is this very build.
inputs=$(printf '%s\n' "$base_id" "$wheels_key" "$app_key" "$(sha256sum <"$repo/Dockerfile")" | sha256sum | cut -c1-16)
if [[ "$(podman image inspect --format '{{index .Labels "dev.aipolicy.inputs"}}' "$IMAGE" 2>/dev/null)" == "$inputs" ]]; then
  log "$IMAGE is up to date"
  echo "$IMAGE"; exit 0
fi
ctx="$repo/build/image"
rm -rf "$ctx"; mkdir -p "$ctx/wheels" "$ctx/app"
cp -l "$wheels"/*.whl "$wheels/requirements.txt" "$ctx/wheels/" 2>/dev/null \
  || cp "$wheels"/*.whl "$wheels/requirements.txt" "$ctx/wheels/"
cp "$app"/*.whl "$ctx/app/"
log "podman build $IMAGE (BASE=$BASE)"
podman build --network=host --layers -q --build-arg BASE="$BASE" --label "dev.aipolicy.inputs=$inputs" \
  -t "$IMAGE" -f "$repo/Dockerfile" "$repo" >/dev/null
echo "$IMAGE"
