"""The aipolicy image under podman, for the e2e tests: the same private podman configuration as
`make image` (hack/podman-env.sh), and containers that run on the host's network and are stopped
by their container id."""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.cluster import REPO

IMAGE = os.environ.get("AIPOLICY_IMAGE", "localhost/aipolicy:dev")


def cache_root() -> Path:
    explicit = os.environ.get("AIPOLICY_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aipolicy"


def podman_env() -> dict[str, str]:
    root = cache_root() / "podman"
    return {
        **os.environ,
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
    }


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
    return result


def image_missing_reason() -> str | None:
    """Why the image cannot be used, or None when it can."""
    if not (cache_root() / "podman" / "containers.conf").exists():
        return "podman is not set up: run `make image`"
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        return f"{IMAGE} is not built: run `make image`"
    return None


CONTAINER_CONFIG_DIR = "/etc/aipolicy"


def container_kubeconfig(kubeconfig: Path, out_dir: Path) -> Path:
    """A copy of kubeconfig for a container that sees none of the host's paths, written with its
    CA certificate into out_dir, to be mounted at /etc/aipolicy: the CA is a file, as a pod's
    service account CA is (inline CA data would make the client write a temporary file, and the
    image's root is read-only). Both files are readable by the image's non-root user."""
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    for i, entry in enumerate(config["clusters"]):
        cluster = entry["cluster"]
        inline = cluster.pop("certificate-authority-data", None)
        path = cluster.pop("certificate-authority", None)
        if inline or path:
            ca = out_dir / f"ca-{i}.crt"
            ca.write_bytes(base64.b64decode(inline) if inline else Path(path).read_bytes())
            ca.chmod(0o644)
            cluster["certificate-authority"] = f"{CONTAINER_CONFIG_DIR}/{ca.name}"
    out = out_dir / "kubeconfig"
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o644)
    out_dir.chmod(0o755)
    return out


@dataclass
class Container:
    """A `podman run` in the foreground (its output in log_path), stopped by its container id."""

    args: list[str]
    log_path: Path
    cid_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> Container:
        self.cid_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["podman", "run", "--rm", f"--cidfile={self.cid_file}", *self.args],
                env=podman_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        return self

    @property
    def container_id(self) -> str | None:
        try:
            return self.cid_file.read_text().strip() or None
        except OSError:
            return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: int = 15) -> None:
        if self.process is None:
            return
        cid = self.container_id
        if cid and self.running:
            podman("stop", f"--time={timeout}", cid, check=False, timeout=timeout + 30)
        try:
            self.process.wait(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            # podman itself hung: its pid is ours, and the container goes with --rm
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
