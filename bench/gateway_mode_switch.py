"""From a mode change written to the API to the first request that sees it, through the gateway.

    source .cluster/env && .venv/bin/python -m bench.gateway_mode_switch [--rounds 10]

On the sourced loopback cluster: a namespace with one API-backed InferenceService (its
provider is a fake on loopback) and one AIBudget selecting it; the gateway as a process
with its least-privilege Role. Each round plays the operator's part: it writes the budget's
``status.activeAction: Suspend`` (the status subresource, as the operator does), then sends
requests back to back until one is refused with 429, and then clears it and waits for a 200.
The time from the API accepting the write to the first refused (or served) answer is what a
client waits for a mode change; the goal is at most 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from aipolicy.gateway import manifests
from bench.harness import ManagedProcess, free_port, kubectl, python_module, required, wait_until


def _fake_provider(port: int) -> threading.Thread:
    async def chat(request: web.Request) -> web.Response:
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return web.json_response({"choices": [{"index": 0, "message": {"content": "x"}}], "usage": usage})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)

    def run() -> None:
        asyncio.run(_serve(app, port))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def _serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def _status(url: str) -> int:
    body = json.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:  # not listening yet
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.gateway_mode_switch")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    from kubernetes import client, config

    kubeconfig = required("KUBECONFIG")
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))  # type: ignore[no-untyped-call]
    namespace = f"gw-mode-{uuid.uuid4().hex[:5]}"
    work = Path(tempfile.mkdtemp(prefix="gw-mode-"))
    provider_port = free_port()
    _fake_provider(provider_port)

    kubectl("create", "namespace", namespace)
    objects: list[dict[str, Any]] = [
        manifests.service_account(namespace),
        manifests.role(namespace, []),
        manifests.role_binding(namespace),
        {
            "apiVersion": "aipolicy.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "gpt", "namespace": namespace},
            "spec": {
                "model": "gpt",
                "provider": {"url": f"http://127.0.0.1:{provider_port}/v1"},
                "pricing": {"inputPerMillionTokens": "1", "outputPerMillionTokens": "1"},
            },
        },
        {
            "apiVersion": "aipolicy.dev/v1alpha1",
            "kind": "AIBudget",
            "metadata": {"name": "budget", "namespace": namespace},
            "spec": {"limit": "1"},
        },
    ]
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    token = kubectl("-n", namespace, "create", "token", manifests.NAME).strip()
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    gateway_config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "g", "user": {"token": token}}],
        "contexts": [{"name": "g", "context": {"cluster": "c", "user": "g"}}],
        "current-context": "g",
    }
    (work / "kubeconfig").write_text(yaml.safe_dump(gateway_config))
    port = free_port()
    gateway = ManagedProcess(
        python_module(
            "aipolicy",
            "gateway",
            "--namespace",
            namespace,
            "--port",
            str(port),
            "--kubeconfig",
            str(work / "kubeconfig"),
        ),
        dict(os.environ),
        work / "gateway.log",
    ).start()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    to_refused: list[float] = []
    to_served: list[float] = []
    try:
        wait_until("the gateway serving", lambda: _status(url) == 200, timeout=60)
        for _ in range(args.rounds):
            for action, want, out in (("Suspend", 429, to_refused), ("", 200, to_served)):
                status = {"activeAction": action, "spent": "2", "periodEnd": "2099-01-01T00:00:00Z"}
                api.patch_namespaced_custom_object_status(
                    "aipolicy.dev", "v1alpha1", namespace, "aibudgets", "budget", {"status": status}
                )
                written = time.perf_counter()
                while _status(url) != want:
                    if time.perf_counter() - written > 30:
                        raise SystemExit(f"no {want} within 30 s of the write")
                out.append(time.perf_counter() - written)
                time.sleep(0.2)
    finally:
        gateway.stop()
        kubectl("delete", "namespace", namespace, "--wait=false")
    print("## Gateway: mode change in the API to the first request that sees it\n")
    print(
        "Command: `source .cluster/env && .venv/bin/python -m bench.gateway_mode_switch "
        f"--rounds {args.rounds}`.\n"
    )
    for what, values in (
        ("Suspend written -> first 429", to_refused),
        ("Suspend cleared -> first 200", to_served),
    ):
        print(
            f"- {what}: median {statistics.median(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms over {len(values)} rounds"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
