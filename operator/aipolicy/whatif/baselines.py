"""What users run today, modelled as Kubernetes and KEDA implement it: HPA v2, KEDA on top.

:class:`Hpa` follows ``pkg/controller/podautoscaler/horizontal.go`` (Kubernetes 1.30) for one
``External`` metric with an ``AverageValue`` target, which is how KEDA and prometheus-adapter
feed vLLM metrics to an HPA:

1. ``usageRatio = metric / (target * currentReplicas)``; within ``1 ± tolerance`` (0.1) the
   recommendation is the current count, else ``ceil(metric / target)``.
2. Stabilization (``stabilizeRecommendationWithBehaviors``): up to the lowest recommendation
   of the scale-up window, down to the highest of the scale-down window; the window is seeded
   with the current count when the HPA starts (``maybeInitScaleDownStabilizationWindow``).
3. Rate limits (``convertDesiredReplicasWithBehaviorRate``): the replicas at the start of each
   policy's period are the current ones minus what was added plus what was removed in it; the
   default scale-up allows ``max(+4 pods, +100 %)`` per 15 s, scale-down ``-100 %`` per 15 s.
4. ``[minReplicas, maxReplicas]``. An HPA at 0 replicas does nothing (scaling is disabled).

:class:`Keda` adds the 0 <-> 1 step of KEDA's ``scale_scaledobjects.go``: every
``pollingInterval`` (30 s) a trigger is active if its metric exceeds ``activationThreshold``;
active at 0 replicas scales to ``max(minReplicaCount, 1)``; inactive for ``cooldownPeriod``
(300 s) since ``lastActiveTime`` scales to 0 (with ``minReplicaCount`` 0).

All pure: state is explicit and ``now`` is an argument (seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Hpa", "HpaRules", "Keda", "ScalingPolicyRule"]


@dataclass(frozen=True)
class ScalingPolicyRule:
    """One HPAScalingPolicy: Pods or Percent per periodSeconds."""

    type: Literal["Pods", "Percent"]
    value: int
    period_s: float


@dataclass(frozen=True)
class HpaRules:
    """One direction of spec.behavior (HPAScalingRules)."""

    stabilization_s: float
    policies: tuple[ScalingPolicyRule, ...]
    select: Literal["Max", "Min", "Disabled"] = "Max"


DEFAULT_UP = HpaRules(0, (ScalingPolicyRule("Pods", 4, 15), ScalingPolicyRule("Percent", 100, 15)))
DEFAULT_DOWN = HpaRules(300, (ScalingPolicyRule("Percent", 100, 15),))


def _changes_in(events: list[tuple[float, int]], now: float, period_s: float) -> int:
    return sum(change for t, change in events if t > now - period_s)


@dataclass
class Hpa:
    """One HorizontalPodAutoscaler and its controller's memory (see the module docstring)."""

    min_replicas: int
    max_replicas: int
    target: float
    tolerance: float = 0.1
    up: HpaRules = DEFAULT_UP
    down: HpaRules = DEFAULT_DOWN
    sync_period_s: float = 15.0
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up_events: list[tuple[float, int]] = field(default_factory=list)
    scale_down_events: list[tuple[float, int]] = field(default_factory=list)

    def raw_recommendation(self, current: int, metric: float) -> int:
        ratio = metric / (self.target * current)
        if abs(ratio - 1.0) <= self.tolerance:
            return current
        return math.ceil(metric / self.target)

    def _stabilize(self, now: float, current: int, desired: int) -> int:
        if not self.recommendations:  # maybeInitScaleDownStabilizationWindow
            self.recommendations.append((now, current))
        up_cut, down_cut = now - self.up.stabilization_s, now - self.down.stabilization_s
        up_rec, down_rec = desired, desired
        for t, r in self.recommendations:
            if t > up_cut:
                up_rec = min(up_rec, r)
            if t > down_cut:
                down_rec = max(down_rec, r)
        keep = max(self.up.stabilization_s, self.down.stabilization_s)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - keep]
        self.recommendations.append((now, desired))
        stabilized = current
        stabilized = max(stabilized, up_rec)
        return min(stabilized, down_rec)

    def _up_limit(self, now: float, current: int) -> int:
        if self.up.select == "Disabled":
            return current
        result: int | None = None
        for p in self.up.policies:
            start = (current - _changes_in(self.scale_up_events, now, p.period_s)
                     + _changes_in(self.scale_down_events, now, p.period_s))  # fmt: skip
            proposed = start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
            if result is None:
                result = proposed
            result = max(result, proposed) if self.up.select == "Max" else min(result, proposed)
        return current if result is None else result

    def _down_limit(self, now: float, current: int) -> int:
        if self.down.select == "Disabled":
            return current
        result: int | None = None
        for p in self.down.policies:
            start = (current - _changes_in(self.scale_up_events, now, p.period_s)
                     + _changes_in(self.scale_down_events, now, p.period_s))  # fmt: skip
            proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
            if result is None:
                result = proposed
            result = min(result, proposed) if self.down.select == "Max" else max(result, proposed)
        return current if result is None else result

    def decide(self, now: float, current: int, metric: float | None) -> int:
        """The replicas for ``current`` and the metric summed over pods (None: unavailable)."""
        if current == 0:
            return 0  # the HPA is disabled at zero; KEDA owns 0 <-> 1
        if metric is None:
            return current  # a failed metric fetch leaves the scale alone
        desired = self._stabilize(now, current, self.raw_recommendation(current, metric))
        if desired > current:
            limit = max(self._up_limit(now, current), current)
            desired = min(desired, self.max_replicas, limit)
        elif desired < current:
            limit = min(self._down_limit(now, current), current)
            desired = max(desired, self.min_replicas, limit)
        desired = min(max(desired, self.min_replicas), self.max_replicas)
        keep = max((p.period_s for p in (*self.up.policies, *self.down.policies)), default=0.0)
        self.scale_up_events = [(t, c) for t, c in self.scale_up_events if t > now - keep]
        self.scale_down_events = [(t, c) for t, c in self.scale_down_events if t > now - keep]
        if desired > current:
            self.scale_up_events.append((now, desired - current))
        elif desired < current:
            self.scale_down_events.append((now, current - desired))
        return desired


@dataclass
class Keda:
    """A ScaledObject: its HPA for 1 <-> N, and KEDA's own loop for 0 <-> 1."""

    hpa: Hpa
    min_replica_count: int = 0
    activation_threshold: float = 0.0
    polling_interval_s: float = 30.0
    cooldown_s: float = 300.0
    last_active: float | None = None

    def poll(self, now: float, current: int, metric: float | None, waiting_at_door: int) -> int:
        """KEDA's poll: the replicas after the 0 <-> 1 rules (metric None counts as inactive)."""
        active = (metric is not None and metric > self.activation_threshold) or waiting_at_door > 0
        if active:
            self.last_active = now
            if current == 0:
                return max(self.min_replica_count, 1)
            return current
        # never active yet: initialCooldownPeriod (default 0) applies, so zero at once
        cooled = self.last_active is None or now - self.last_active >= self.cooldown_s
        if self.min_replica_count == 0 and current > 0 and cooled:
            return 0
        return current
