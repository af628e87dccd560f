"""Cold starts measured from a service's own pods, and the pre-warm lead time they give.

A model server's cold start (pulling the image, loading weights onto GPUs) is what pre-warm must
start ahead of, and it is a property of the model, the image and the nodes, not something a
user knows to the second. So unless spec.scaling.coldStartSeconds says otherwise, the lead time
is measured: each pod's time from creation to its Ready condition, the last few kept in status
(a restart loses none and counts none twice), and a high percentile of them used, so that most
replicas are Ready before the window opens rather than half of them.

Pure: pods are plain mappings as the pod index keeps them (controllers/indexes.slim_pod).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

MAX_COLD_STARTS = 10
"""Measurements kept in status: enough for a percentile, recent enough to follow a new image."""
PERCENTILE = 0.9
DEFAULT_COLD_START_SECONDS = 120
"""The lead time before any pod of the service has been measured."""
LONGEST_COLD_START_SECONDS = 7200
"""Longer than this from creation to Ready is not a cold start but a pod that became Ready again
later (a restarted container): it is not counted. The same bound as coldStartSeconds."""

LeadTimeSource = Literal["Spec", "Measured", "Default"]


@dataclass(frozen=True)
class ColdStartSample:
    pod: str
    seconds: float
    ready_at: datetime


@dataclass(frozen=True)
class LeadTime:
    seconds: int
    source: LeadTimeSource
    summary: str
    """The numbers behind it, for status and messages."""


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _cold_start(pod: Mapping[str, Any]) -> ColdStartSample | None:
    metadata = pod.get("metadata") or {}
    name, created = metadata.get("name"), _time(metadata.get("creationTimestamp"))
    ready = next(
        (c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    if not name or created is None or ready is None or ready.get("status") != "True":
        return None
    ready_at = _time(ready.get("lastTransitionTime"))
    if ready_at is None:
        return None
    seconds = (ready_at - created).total_seconds()
    if not 0 <= seconds <= LONGEST_COLD_START_SECONDS:
        return None
    return ColdStartSample(str(name), seconds, ready_at)


def measure_cold_starts(
    pods: Iterable[Mapping[str, Any]], known: Sequence[ColdStartSample], limit: int = MAX_COLD_STARTS
) -> tuple[ColdStartSample, ...]:
    """``known`` plus the cold starts of pods Ready since the newest known one, oldest first,
    the last ``limit``.

    Only pods that became Ready after the newest measurement are added (ordered by Ready time,
    then name): a pod already counted, or one that fell out of the bounded list, is never
    counted again, however many Ready pods the service keeps.
    """
    newest = (known[-1].ready_at, known[-1].pod) if known else None
    names = {s.pod for s in known}
    fresh = sorted(
        (
            sample
            for sample in map(_cold_start, pods)
            if sample is not None
            and sample.pod not in names
            and (newest is None or (sample.ready_at, sample.pod) > newest)
        ),
        key=lambda s: (s.ready_at, s.pod),
    )
    return (*known, *fresh)[-limit:] if limit > 0 else ()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def lead_time(spec_seconds: int | None, samples: Sequence[ColdStartSample]) -> LeadTime:
    """coldStartSeconds when the spec sets it; else the 90th percentile of the measurements,
    rounded up to a second; else the default."""
    if spec_seconds is not None:
        return LeadTime(spec_seconds, "Spec", f"spec.scaling.coldStartSeconds {spec_seconds}")
    if not samples:
        return LeadTime(
            DEFAULT_COLD_START_SECONDS,
            "Default",
            f"no cold start measured yet; {DEFAULT_COLD_START_SECONDS}s",
        )
    p = percentile([s.seconds for s in samples], PERCENTILE)
    seconds = math.ceil(round(p, 3))
    return LeadTime(seconds, "Measured", f"p90 of {len(samples)} measured cold starts: {seconds}s")


__all__ = [
    "DEFAULT_COLD_START_SECONDS",
    "MAX_COLD_STARTS",
    "ColdStartSample",
    "LeadTime",
    "lead_time",
    "measure_cold_starts",
    "percentile",
]
