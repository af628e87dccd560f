"""The one backend vocabulary: who serves a service's traffic, and how it is written down.

A backend is the pods of an InferenceService or an external provider's host. Written, it is
``service/<name>`` or ``provider/<host>``: in status.activeBackend and status.backend, in the
front door's aipolicy.dev/active-backend annotation, in the gateway's `backend` metric label,
and in the PromQL that reads that label back. Every one of those formats and parses it here,
so a change of grammar is one change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from aipolicy.api.fallbackpolicy import FallbackStep

SERVICE_PREFIX = "service/"
PROVIDER_PREFIX = "provider/"
#: What a FallbackPolicy's status shows for a degraded step (no backend of its own).
DEGRADED = "degraded"
#: PromQL regex matching a service backend's label, its name captured as $1.
SERVICE_LABEL_REGEX = f"{SERVICE_PREFIX}(.+)"


def service_label(name: str) -> str:
    return f"{SERVICE_PREFIX}{name}"


def provider_label(host: str) -> str:
    return f"{PROVIDER_PREFIX}{host}"


def provider_host(url: str) -> str | None:
    """The host a provider URL names; None when it names none."""
    return urlsplit(url).hostname or None


@dataclass(frozen=True)
class Backend:
    """Where a front door sends traffic: the pods of a service, or an external host."""

    service: str | None = None
    target_port: int | None = None
    external_host: str | None = None

    @classmethod
    def provider(cls, url: str) -> Backend:
        host = provider_host(url)
        if not host:
            raise ValueError(f"no host in {url!r}")
        return cls(external_host=host)

    @classmethod
    def of_step(cls, step: FallbackStep) -> Backend | None:
        """The backend a FallbackPolicy chain step sends traffic to; None for a degraded step."""
        if step.inference_service:
            return cls(service=step.inference_service)
        if step.provider:
            return cls.provider(step.provider.url)
        return None

    def describe(self) -> str:
        if self.external_host is not None:
            return provider_label(self.external_host)
        return service_label(str(self.service))

    @staticmethod
    def parse(label: str) -> Backend:
        """The inverse of :meth:`describe`; ValueError for any other text."""
        if label.startswith(SERVICE_PREFIX) and len(label) > len(SERVICE_PREFIX):
            return Backend(service=label.removeprefix(SERVICE_PREFIX))
        if label.startswith(PROVIDER_PREFIX) and len(label) > len(PROVIDER_PREFIX):
            return Backend(external_host=label.removeprefix(PROVIDER_PREFIX))
        raise ValueError(f"{label!r} is neither {SERVICE_PREFIX}<name> nor {PROVIDER_PREFIX}<host>")


def step_label(step: FallbackStep) -> str:
    """A chain step as FallbackPolicy status shows it: its backend, or `degraded`. A provider
    URL without a host (the schema refuses it) shows as itself rather than crash."""
    if step.provider is not None and provider_host(step.provider.url) is None:
        return provider_label(step.provider.url)
    backend = Backend.of_step(step)
    return DEGRADED if backend is None else backend.describe()
