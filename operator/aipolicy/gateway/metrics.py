"""The gateway's metrics: per namespace, InferenceService and serving backend, in its own registry.

``aipolicy_gateway_*`` carry ``backend`` (service/<name> or provider/<host>), so a fallback's
traffic and spend show apart from the target's. The LiteLLM preset (the names the operator
reads for API-backed services, ``observe/presets.py``) is exported too, labelled with the
API-backed InferenceService that served: budgets count API spend from them as they would
from a LiteLLM proxy. Keys never appear: labels are names of Kubernetes objects and hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]

# TTFT and e2e buckets of vLLM's histograms (a subset), so dashboards compare like with like.
TTFT_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
E2E_BUCKETS = (
    0.05,
    0.1,
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    60.0,
    120.0,
    300.0,
)
LITELLM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_SERVICE = ["namespace", "service"]
_BY = [*_SERVICE, "backend"]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        counter, gauge, histogram = self._counter, self._gauge, self._histogram
        self.requests = counter("aipolicy_gateway_requests", "Requests answered, by HTTP status", "code")
        self.ttft = histogram(
            "aipolicy_gateway_time_to_first_token_seconds",
            "From the request to the first response byte of the backend",
            TTFT_BUCKETS,
        )
        self.e2e = histogram(
            "aipolicy_gateway_request_duration_seconds", "From the request to its last byte", E2E_BUCKETS
        )
        self.prompt_tokens = counter(
            "aipolicy_gateway_prompt_tokens", "Prompt tokens, from the backend's usage"
        )
        self.completion_tokens = counter(
            "aipolicy_gateway_completion_tokens", "Completion tokens, from the backend's usage"
        )
        self.spend = counter(
            "aipolicy_gateway_spend", "Money at the serving backend's token prices", "currency"
        )
        self.waiting = gauge(
            "aipolicy_frontdoor_requests_waiting",
            "Requests held by the activator while the service has no Ready replica",
            _SERVICE,
        )
        self.in_flight = gauge("aipolicy_gateway_requests_in_flight", "Requests at a backend now", _BY)
        # 1 per Secret a provider of the namespace names and the gateway cannot use, by why
        # (SecretNotFound, SecretKeyMissing, SecretUnreadable): the operator reads it to
        # report the Secret in the InferenceService's conditions without reading Secrets.
        self.secret_problems = gauge(
            "aipolicy_gateway_secret_problem",
            "Referenced Secrets the gateway cannot use (1), by reason; never a value",
            ["namespace", "secret", "reason"],
        )
        self._secret_labels: set[tuple[str, str, str]] = set()
        # The LiteLLM preset, for API-backed services (what observe/presets.py reads): labelled
        # by the API-backed service, not the backend.
        self.litellm_requests = counter(
            "litellm_proxy_total_requests_metric", "Requests (LiteLLM preset)", "status_code", labels=_SERVICE
        )
        self.litellm_failed = counter(
            "litellm_proxy_failed_requests_metric",
            "Failed requests (LiteLLM preset)",
            "exception_status",
            labels=_SERVICE,
        )
        self.litellm_input = counter(
            "litellm_input_tokens_metric", "Prompt tokens (LiteLLM preset)", labels=_SERVICE
        )
        self.litellm_output = counter(
            "litellm_output_tokens_metric", "Completion tokens (LiteLLM preset)", labels=_SERVICE
        )
        self.litellm_latency = histogram(
            "litellm_request_total_latency_metric",
            "End-to-end latency (LiteLLM preset)",
            LITELLM_BUCKETS,
            labels=_SERVICE,
        )

    # One builder per type: every metric here lives in this registry, labelled by namespace,
    # service and (unless told otherwise) serving backend, plus any extra label.
    def _counter(self, name: str, doc: str, *extra: str, labels: list[str] = _BY) -> Counter:
        return Counter(name, doc, [*labels, *extra], registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: list[str]) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], *, labels: list[str] = _BY
    ) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def secret_state(self, namespace: str, problems: dict[str, str]) -> None:
        """Exactly the current problems (secret -> reason) are exported; fixed ones vanish."""
        now = {(namespace, secret, reason) for secret, reason in problems.items()}
        for gone in self._secret_labels - now:
            self.secret_problems.remove(*gone)
        for labels in now:
            self.secret_problems.labels(*labels).set(1)
        self._secret_labels = now

    def answered(
        self,
        namespace: str,
        service: str,
        backend: str,
        status: int,
        *,
        api_service: str | None = None,
        seconds: float | None = None,
    ) -> None:
        self.requests.labels(namespace, service, backend, str(status)).inc()
        if seconds is not None:
            self.e2e.labels(namespace, service, backend).observe(seconds)
        if api_service is not None:
            self.litellm_requests.labels(namespace, api_service, str(status)).inc()
            if status >= 400:
                self.litellm_failed.labels(namespace, api_service, str(status)).inc()
            elif seconds is not None:
                self.litellm_latency.labels(namespace, api_service).observe(seconds)

    def prime(self, namespace: str, backends: Iterable[tuple[str, str, str]]) -> None:
        """Export the token and spend counters of each (service, backend, currency) at zero if
        they are not there yet (routing.known_backends says why)."""
        for service, backend, currency in backends:
            self.prompt_tokens.labels(namespace, service, backend)
            self.completion_tokens.labels(namespace, service, backend)
            self.spend.labels(namespace, service, backend, currency)

    def usage(
        self,
        namespace: str,
        service: str,
        backend: str,
        prompt: int,
        completion: int,
        cost: Decimal,
        currency: str,
        *,
        api_service: str | None = None,
    ) -> None:
        self.prompt_tokens.labels(namespace, service, backend).inc(prompt)
        self.completion_tokens.labels(namespace, service, backend).inc(completion)
        self.spend.labels(namespace, service, backend, currency).inc(float(cost))
        if api_service is not None:
            self.litellm_input.labels(namespace, api_service).inc(prompt)
            self.litellm_output.labels(namespace, api_service).inc(completion)
