"""Leader election on a coordination.k8s.io/v1 Lease: the decisions, pure.

The shell (controllers/leadership.py) reads the Lease, calls :func:`decide` with what it read,
what it saw before, our identity and the clocks, and carries out the :class:`Decision`: a
create, or an update guarded by the resourceVersion it read (optimistic concurrency: of two
candidates writing over the same version, the API server accepts one and answers 409 to the
other, so two can never both win).

The rules are client-go's ``leaderelection`` package:

- **Expiry is judged on our own clock, never on the holder's.** A standby does not compare
  ``renewTime`` with its wall clock (the holder's clock may be minutes off); it notes, on its
  monotonic clock, when it first saw the record change, and the lease is free once the record
  has not changed for ``leaseDurationSeconds`` (the Lease's own value, so replicas of another
  version with another setting are judged by the holder's word).
- **The leader acts only while its lease is surely its own (fencing).** Each successful write
  makes it leader until ``sent + renew_deadline``, where ``sent`` is when the request left
  (monotonic): the API server stored the renewal after that instant, so every standby's
  countdown starts after it too, and the lease cannot pass before ``sent + lease_duration``.
  ``renew_deadline < lease_duration`` leaves the difference as a margin for in-flight work
  and for clocks that tick at slightly different rates.
- **Released leases are taken at once**: a leader that shuts down cleanly empties
  ``holderIdentity``, so a rolling update hands over in one retry period, not a lease duration.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class Timing:
    """How the election runs, in seconds.

    The defaults give a takeover within ``retry_period + lease_duration`` = 12 s of the
    leader's death: a standby sees the last renewal at most one retry period after it was
    written, and then wakes exactly at its expiry (:attr:`Decision.wait`) rather than at its
    next periodic retry. client-go's defaults (15 s / 10 s / 2 s) would take up to 17 s;
    the 15 s goal needs a shorter lease. 10 s still spans five renewals, so one or two slow
    API requests do not depose a healthy leader.
    """

    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


@dataclass(frozen=True)
class LeaseSpec:
    """The fields of a Lease's spec that the election reads and writes."""

    holder: str
    """holderIdentity; empty when nobody holds it (released)."""
    duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Stored:
    """A Lease as read from the API: its spec and the resourceVersion that guards a write."""

    spec: LeaseSpec
    version: str


#: The version remembered for a Lease seen deleted.
GONE = ""


@dataclass(frozen=True)
class Seen:
    """The last Lease we read and when, on our monotonic clock, it last changed."""

    version: str
    holder: str
    changed_at: float


@dataclass(frozen=True)
class Decision:
    action: Literal["create", "update", "wait"]
    """Create the Lease, update it over ``guard`` (acquire or renew), or leave it alone."""
    spec: LeaseSpec | None
    """What to write (None when waiting)."""
    guard: str | None
    """The resourceVersion the update must be made over (None for create and wait)."""
    seen: Seen | None
    """What to remember of this read, for the next call."""
    wait: float
    """Seconds until the next round (if this round's write succeeds, or there is none)."""
    why: str
    """A sentence for the log."""


def decide(
    stored: Stored | None,
    seen: Seen | None,
    me: str,
    now: float,
    wall: datetime,
    timing: Timing,
) -> Decision:
    """The next step of candidate ``me``, from the Lease as just read (None: it does not exist).

    ``now`` is our monotonic clock (only differences of it matter); ``wall`` is the time
    written into acquireTime/renewTime, which other candidates never use to judge expiry.
    """
    duration = max(1, round(timing.lease_duration))
    if stored is None:
        if seen is not None and seen.holder and seen.holder != me:
            # Deleted under a live holder (by hand): that holder may act until its deadline,
            # so the disappearance counts as its last sign of life, like a renewal.
            gone_at = seen.changed_at if seen.version == GONE else now
            observed = Seen(GONE, seen.holder, gone_at)
            if now < gone_at + duration:
                wait = min(timing.retry_period, gone_at + duration - now)
                why = f"the lease of {seen.holder} was deleted: waiting out its duration"
                return Decision("wait", None, None, observed, wait, why)
        fresh = LeaseSpec(me, duration, acquire_time=wall, renew_time=wall, transitions=0)
        return Decision("create", fresh, None, None, timing.retry_period, "no lease yet: creating it")

    spec = stored.spec
    # a new version is a sign of life (a renewal, a new holder): the countdown starts again
    changed_at = seen.changed_at if seen is not None and seen.version == stored.version else now
    observed = Seen(stored.version, spec.holder, changed_at)

    if spec.holder == me:
        renewed = replace(spec, duration_seconds=duration, renew_time=wall)
        return Decision("update", renewed, stored.version, observed, timing.retry_period, "renewing")

    if not spec.holder:
        acquired = _acquired(spec, me, wall, duration)
        why = "the lease is released: acquiring it"
        return Decision("update", acquired, stored.version, observed, timing.retry_period, why)

    # someone else holds it: free once their record has stood unchanged for its duration
    expires_at = observed.changed_at + spec.duration_seconds
    if now >= expires_at:
        acquired = _acquired(spec, me, wall, duration)
        why = f"{spec.holder} did not renew for {spec.duration_seconds}s: taking over"
        return Decision("update", acquired, stored.version, observed, timing.retry_period, why)
    # wake at the expiry itself if it comes before the next periodic look
    wait = min(timing.retry_period, expires_at - now)
    return Decision("wait", None, None, observed, wait, f"held by {spec.holder}")


def _acquired(spec: LeaseSpec, me: str, wall: datetime, duration: int) -> LeaseSpec:
    return LeaseSpec(me, duration, acquire_time=wall, renew_time=wall, transitions=spec.transitions + 1)


def released(spec: LeaseSpec, me: str, wall: datetime) -> LeaseSpec | None:
    """The spec that hands the lease back on a clean shutdown, or None if it is not ours.

    Like client-go's ReleaseOnCancel: holderIdentity emptied (a standby takes it at its next
    look), duration 1 s for candidates that only judge expiry.
    """
    if spec.holder != me:
        return None
    return replace(spec, holder="", duration_seconds=1, renew_time=wall)


def leading_until(sent: float, timing: Timing) -> float:
    """Until when (monotonic) a write of our lease sent at ``sent`` lets us act."""
    return sent + timing.renew_deadline


def lease_name(namespaces: list[str], prefix: str = "aipolicy") -> str:
    """The Lease of a shard: one per set of watched namespaces, the same in every replica.

    Cluster-wide: ``prefix`` itself. A shard: the prefix and its namespaces, sorted, when that
    fits a name (a DNS subdomain, at most 253 characters; namespaces are DNS labels, so joined
    with dots they stay one), else the prefix and a digest of them.
    """
    unique = sorted(set(namespaces))
    if not unique:
        return prefix
    name = ".".join([prefix, *unique])
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(",".join(unique).encode()).hexdigest()[:16]
    return f"{prefix}.shard-{digest}"
