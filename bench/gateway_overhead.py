"""What `aipolicy gateway` adds to a request, side by side with a direct call (and LiteLLM).

    .venv/bin/python -m bench.gateway_overhead [--litellm /path/to/litellm] [--duration 10]

One fake OpenAI backend (fixed latency, streamed tokens) in its own process; the gateway in
its own process, serving a fixed state file (one InferenceService, one Ready pod that is the
fake backend: no cluster involved); optionally LiteLLM proxy with one worker in front of the
same backend. The load generator (this process, aiohttp) sends open-loop Poisson-free
uniform arrivals at each rate and records each request's end-to-end latency; the added
latency is the percentile through the proxy minus the percentile direct. Then: the most
requests/s one gateway process sustains (closed loop, 64 clients, backend without delay),
and the gateway's RSS with 1,000 concurrent streams. Numbers are this machine's, shared with
whatever else runs on it; no test asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.harness import REPO, free_port

MODEL = "fake-model"  # the latency backend: --latency, then 10 tokens 1 ms apart
FAST = "fake-fast"  # no delay at all: what the proxy itself sustains
SLOW_STREAM = "fake-stream"  # 100 ms to the first token, then one every 200 ms: long-lived streams
# LiteLLM refuses to start without a master key; every target gets it (the gateway drops it).
MASTER_KEY = "sk-bench-local-only"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


# --- the fake backend -------------------------------------------------------------------------


def backend_app(latency_s: float, tokens: int, token_interval_s: float) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        n = int(body.get("max_tokens") or tokens)
        delay = latency_s
        usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
        if not body.get("stream"):
            await asyncio.sleep(delay)
            return web.json_response(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "tok " * n},
                            "finish_reason": "length",
                        }
                    ],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(delay)
        interval = token_interval_s
        for i in range(n):
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if i < n - 1:
                await asyncio.sleep(interval)
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(f"data: {json.dumps({'id': 'x', 'choices': [], 'usage': usage})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def run_backend(port: int, latency_s: float, interval_s: float) -> None:
    web.run_app(
        backend_app(latency_s, 10, interval_s), host="127.0.0.1", port=port, access_log=None, print=None
    )


# --- processes --------------------------------------------------------------------------------


def _state_file(folder: Path, ports: dict[str, int]) -> Path:
    """One InferenceService and one Ready pod (the fake backend) per model."""
    objects: list[dict[str, Any]] = []
    for model, port in ports.items():
        objects.append(
            {
                "kind": "InferenceService",
                "metadata": {"name": model, "namespace": "bench"},
                "spec": {
                    "model": model,
                    "serving": {"image": "fake", "port": port},
                    "pricing": {"gpuHour": "1", "inputPerMillionTokens": "1", "outputPerMillionTokens": "2"},
                },
            }
        )
        objects.append(
            {
                "kind": "Pod",
                "metadata": {"name": f"{model}-0", "labels": {"aipolicy.dev/service": model}},
                "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
    path = folder / "state.json"
    path.write_text(json.dumps(objects))  # JSON is YAML
    return path


async def _wait_listening(url: str, model: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.post(
                    url, json={"model": model, "messages": [], "max_tokens": 1}, headers=AUTH
                ) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- load -------------------------------------------------------------------------------------


async def open_loop(url: str, rate: float, duration: float, session: aiohttp.ClientSession) -> list[float]:
    """Requests at a fixed rate (not waiting for answers); each one's latency in seconds."""
    latencies: list[float] = []
    errors = 0
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    ).encode()

    async def one() -> None:
        nonlocal errors
        t0 = time.perf_counter()
        async with session.post(url, data=body, headers={"Content-Type": "application/json", **AUTH}) as r:
            await r.read()
            if r.status != 200:
                errors += 1
                return
        latencies.append(time.perf_counter() - t0)

    tasks = []
    start = time.perf_counter()
    n = int(rate * duration)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks, return_exceptions=True)
    if errors:
        print(f"  {errors} errors at {rate}/s on {url}", file=sys.stderr)
    return latencies


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(url: str, clients: int, duration: float, session: aiohttp.ClientSession) -> float:
    done = 0
    stop = time.perf_counter() + duration
    body = json.dumps({"model": FAST, "messages": [], "max_tokens": 1}).encode()

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json", **AUTH}
            ) as r:
                await r.read()
                if r.status == 200:
                    done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - t0)


async def streams_rss(url: str, pid: int, streams: int) -> tuple[float, int]:
    """Open ``streams`` concurrent streams (10 s each) and read the proxy's RSS mid-way."""
    connector = aiohttp.TCPConnector(limit=0)
    ok = 0
    body = json.dumps({"model": SLOW_STREAM, "messages": [], "max_tokens": 50, "stream": True}).encode()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def one() -> None:
            nonlocal ok
            headers = {"Content-Type": "application/json", **AUTH}
            async with session.post(url, data=body, headers=headers) as r:
                async for _ in r.content.iter_any():
                    pass
                ok += r.status == 200

        tasks = [asyncio.create_task(one()) for _ in range(streams)]
        await asyncio.sleep(6)
        rss = _rss_mib(pid)
        await asyncio.gather(*tasks, return_exceptions=True)
    return rss, ok


@dataclass
class Setup:
    #: per target (direct, gateway, litellm): the URL to call for each model
    targets: dict[str, dict[str, str]]
    pids: dict[str, int]
    procs: list[subprocess.Popen[bytes]]


def start_processes(args: argparse.Namespace) -> Setup:
    """Three fake backends, the gateway and (optionally) LiteLLM, each in its own process."""
    folder = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    shapes = {MODEL: (args.latency, 0.001), FAST: (0.0, 0.0), SLOW_STREAM: (0.1, 0.2)}
    ports = {model: free_port() for model in shapes}
    procs: list[subprocess.Popen[bytes]] = []
    for model, (latency, interval) in shapes.items():
        backend = [py, "-m", "bench.gateway_overhead", "backend", "--port", str(ports[model])]
        backend += ["--latency", str(latency), "--interval", str(interval)]
        procs.append(subprocess.Popen(backend, cwd=REPO, env=env))
    direct = {m: f"http://127.0.0.1:{p}/v1/chat/completions" for m, p in ports.items()}
    gateway_port = free_port()
    gateway_args = [py, "-m", "aipolicy", "gateway", "--namespace", "bench", "--port", str(gateway_port)]
    gateway_args += [
        "--state-file",
        str(_state_file(folder, ports)),
        "--pod-url-template",
        "http://{ip}:{port}",
    ]
    gateway = subprocess.Popen(gateway_args, cwd=REPO, env=env, **quiet)  # type: ignore[call-overload]
    procs.append(gateway)
    gateway_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
    setup = Setup(
        {"direct": direct, "gateway": dict.fromkeys(ports, gateway_url)}, {"gateway": gateway.pid}, procs
    )
    if args.litellm:
        litellm_port = free_port()
        config = folder / "litellm.yaml"
        lines = ["model_list:"]
        for model, port in ports.items():
            lines += [
                f"  - model_name: {model}",
                "    litellm_params:",
                f"      model: openai/{model}",
                f"      api_base: http://127.0.0.1:{port}/v1",
                "      api_key: fake",
            ]
        lines += ["general_settings:", f"  master_key: {MASTER_KEY}"]
        config.write_text("\n".join(lines) + "\n")
        lite_args = [args.litellm, "--config", str(config), "--port", str(litellm_port), "--num_workers", "1"]
        lite = subprocess.Popen(lite_args, **quiet)  # type: ignore[call-overload]
        procs.append(lite)
        setup.pids["litellm"] = lite.pid
        setup.targets["litellm"] = dict.fromkeys(
            ports, f"http://127.0.0.1:{litellm_port}/v1/chat/completions"
        )
    return setup


def stop_processes(setup: Setup) -> None:
    for p in setup.procs:
        p.terminate()
    for p in setup.procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


async def measure(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    targets = setup.targets
    for urls in targets.values():
        for model, url in urls.items():
            await _wait_listening(url, model, within_s=180)
    results: dict[str, Any] = {"latency": {}, "max_rps": {}, "rss": {}}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for urls in targets.values():
            await open_loop(urls[MODEL], 20, 1, session)  # warm up
        for rate in args.rates:
            for name, urls in targets.items():
                lat = await open_loop(urls[MODEL], rate, args.duration, session)
                results["latency"][(name, rate)] = (_pct(lat, 0.5), _pct(lat, 0.99), len(lat))
        for name, urls in targets.items():
            results["max_rps"][name] = await closed_loop(urls[FAST], 64, args.duration, session)
    for name, pid in setup.pids.items():
        results["rss"][name] = await streams_rss(targets[name][SLOW_STREAM], pid, args.streams)
    return results


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "## Gateway: added latency, throughput and memory",
        "",
        f"Command: `.venv/bin/python -m bench.gateway_overhead{' --litellm …' if args.litellm else ''}` "
        f"(bench/gateway_overhead.py). Fake backend: {args.latency * 1000:g} ms then 10 tokens; "
        f"{args.duration:g} s per rate, open loop; one gateway process.",
        "",
        "| rate (req/s) | direct p50 / p99 (ms) | proxy | proxy p50 / p99 (ms) | added p50 / p99 (ms) |",
        "|---|---|---|---|---|",
    ]
    for rate in args.rates:
        d50, d99, _ = results["latency"][("direct", rate)]
        for name in ("gateway", "litellm"):
            if (name, rate) not in results["latency"]:
                continue
            p50, p99, _n = results["latency"][(name, rate)]
            added = f"{(p50 - d50) * 1000:+.1f} / {(p99 - d99) * 1000:+.1f}"
            lines.append(
                f"| {rate} | {d50 * 1000:.1f} / {d99 * 1000:.1f} | {name} | "
                f"{p50 * 1000:.1f} / {p99 * 1000:.1f} | {added} |"
            )
    lines.append("")
    for name, rps in results["max_rps"].items():
        lines.append(f"- Most requests/s, {name} (64 clients, closed loop, backend without delay): {rps:.0f}")
    for name, (rss, ok) in results["rss"].items():
        lines.append(
            f"- RSS of {name} with {args.streams} concurrent streams: {rss:.0f} MiB ({ok} streams completed)"
        )
    lines.append(
        f"- Machine: {os.cpu_count()} cores shared with other work; the load generator runs on them too."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.gateway_overhead")
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "backend"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--interval", type=float, default=0.001, help="backend: seconds between tokens")
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument(
        "--litellm", default=None, help="path of a `litellm` proxy executable to compare with"
    )
    args = parser.parse_args(argv)
    if args.mode == "backend":
        run_backend(args.port, args.latency, args.interval)
        return 0
    setup = start_processes(args)
    try:
        results = asyncio.run(measure(setup, args))
    finally:
        stop_processes(setup)
    print(report(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
