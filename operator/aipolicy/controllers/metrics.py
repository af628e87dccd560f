"""The operator's own /metrics (and /healthz), served on 127.0.0.1 for Prometheus to scrape."""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

BUDGET_SPENT = Gauge("aipolicy_budget_spent", "Spend so far this period", ["namespace", "budget", "currency"])
BUDGET_LIMIT = Gauge("aipolicy_budget_limit", "Budget limit per period", ["namespace", "budget", "currency"])
BUDGET_UTILISATION = Gauge("aipolicy_budget_utilisation_ratio", "Spent / limit", ["namespace", "budget"])
BUDGET_FORECAST = Gauge(
    "aipolicy_budget_forecast",
    "Spend forecast for the end of the period (absent without a burn rate)",
    ["namespace", "budget", "currency"],
)
BUDGET_NOTIFICATIONS = Counter(
    "aipolicy_budget_notifications_total", "Thresholds announced", ["namespace", "budget", "action"]
)
SERVICE_MODE = Gauge(
    "aipolicy_service_mode",
    "1 for the mode an InferenceService is in",
    ["namespace", "service", "mode"],
)
SERVICE_COST_PER_HOUR = Gauge(
    "aipolicy_service_cost_per_hour",
    "What the GPUs an InferenceService holds cost per hour",
    ["namespace", "service", "currency"],
)
SERVICE_GPU_HOUR_RATE = Gauge(
    "aipolicy_service_gpu_hour_rate",
    "An InferenceService's price of one GPU-hour (pricing.gpuHour)",
    ["namespace", "service", "currency"],
)
SCALING_DECISIONS = Counter(
    "aipolicy_scaling_decisions_total",
    "Replica changes decided",
    ["namespace", "service", "reason"],
)
FALLBACK_ACTIVE = Gauge("aipolicy_fallback_active", "1 while a fallback serves", ["namespace", "policy"])
FALLBACK_TRANSITIONS = Counter(
    "aipolicy_fallback_transitions_total", "Front-door switches", ["namespace", "policy"]
)
EVALUATION_SECONDS = Histogram("aipolicy_evaluation_seconds", "Time to evaluate one object", ["kind"])
PROMETHEUS_ERRORS = Counter("aipolicy_prometheus_errors_total", "Prometheus queries that failed")
PROMETHEUS_QUERIES = Counter(
    "aipolicy_prometheus_queries_total", "Prometheus queries sent (identical ones at one time coalesced)"
)


def set_or_clear(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """Set a gauge's series, or remove it when there is no value: absent, never a stale number."""
    if value is not None:
        gauge.labels(*labels).set(value)
        return
    with contextlib.suppress(KeyError):  # never set: nothing to clear
        gauge.remove(*labels)


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve until cancelled."""
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        import asyncio

        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
