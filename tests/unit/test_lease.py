"""The leader-election decisions (policy/lease.py), with plain data and made-up clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipolicy.policy.lease import (
    LeaseSpec,
    Seen,
    Stored,
    Timing,
    decide,
    leading_until,
    lease_name,
    released,
)

T = Timing()  # 10 s lease, 7 s renew deadline, 2 s retry
WALL = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


def held_by(holder: str, version: str = "100", renewed: datetime = WALL, duration: int = 10) -> Stored:
    return Stored(
        LeaseSpec(holder, duration, acquire_time=renewed, renew_time=renewed, transitions=3), version
    )


def test_no_lease_is_created_with_us_holding_it() -> None:
    decision = decide(None, None, "a", now=50.0, wall=WALL, timing=T)
    assert decision.action == "create"
    assert decision.spec == LeaseSpec("a", 10, acquire_time=WALL, renew_time=WALL, transitions=0)
    assert decision.guard is None


def test_our_own_lease_is_renewed_over_the_version_read() -> None:
    later = WALL + timedelta(seconds=2)
    decision = decide(held_by("a", "7"), None, "a", now=52.0, wall=later, timing=T)
    assert decision.action == "update"
    assert decision.guard == "7"
    assert decision.spec is not None
    assert decision.spec.renew_time == later
    assert decision.spec.acquire_time == WALL  # still the same term
    assert decision.spec.transitions == 3
    assert decision.wait == T.retry_period


def test_a_lease_just_seen_held_by_another_is_not_taken() -> None:
    decision = decide(held_by("b"), None, "a", now=50.0, wall=WALL, timing=T)
    assert decision.action == "wait"
    assert decision.seen == Seen("100", "b", 50.0)


def test_a_lease_unchanged_for_its_duration_is_taken_over() -> None:
    first = decide(held_by("b"), None, "a", now=50.0, wall=WALL, timing=T)
    still = decide(held_by("b"), first.seen, "a", now=59.9, wall=WALL, timing=T)
    assert still.action == "wait"
    taken = decide(held_by("b"), still.seen, "a", now=60.0, wall=WALL, timing=T)
    assert taken.action == "update"
    assert taken.guard == "100"  # over the very version that stood still: a renewal in between wins
    assert taken.spec is not None
    assert taken.spec.holder == "a"
    assert taken.spec.acquire_time == WALL
    assert taken.spec.transitions == 4


def test_someone_else_renewing_restarts_the_countdown() -> None:
    seen = decide(held_by("b", "100"), None, "a", now=50.0, wall=WALL, timing=T).seen
    for step, version in enumerate(["101", "102", "103", "104", "105", "106"], start=1):
        decision = decide(held_by("b", version), seen, "a", now=50.0 + 8 * step, wall=WALL, timing=T)
        assert decision.action == "wait", f"renewal {version} should keep b the leader"
        seen = decision.seen
    assert seen is not None
    assert seen.changed_at == 98.0


def test_a_standby_wakes_at_the_expiry_rather_than_after_it() -> None:
    seen = decide(held_by("b"), None, "a", now=50.0, wall=WALL, timing=T).seen
    decision = decide(held_by("b"), seen, "a", now=59.5, wall=WALL, timing=T)
    assert decision.action == "wait"
    assert decision.wait == pytest.approx(0.5)


@pytest.mark.parametrize("skew", [timedelta(hours=-1), timedelta(hours=1), timedelta(days=-400)])
def test_the_holders_clock_does_not_matter(skew: timedelta) -> None:
    """renewTime far in the past (their clock behind) does not make a live leader look dead,
    nor far in the future (their clock ahead) a dead one look alive: only our own clock counts."""
    renewed = WALL + skew
    first = decide(held_by("b", renewed=renewed), None, "a", now=50.0, wall=WALL, timing=T)
    assert first.action == "wait"
    expired = decide(held_by("b", renewed=renewed), first.seen, "a", now=60.0, wall=WALL, timing=T)
    assert expired.action == "update"


def test_our_wall_clock_does_not_matter_either() -> None:
    seen = decide(held_by("b"), None, "a", now=50.0, wall=WALL, timing=T).seen
    years_later = WALL + timedelta(days=3650)
    assert decide(held_by("b"), seen, "a", now=51.0, wall=years_later, timing=T).action == "wait"


def test_the_holders_own_duration_is_the_one_waited() -> None:
    """A replica of another version renewing with a 30 s lease is waited for 30 s."""
    seen = decide(held_by("b", duration=30), None, "a", now=50.0, wall=WALL, timing=T).seen
    assert decide(held_by("b", duration=30), seen, "a", now=70.0, wall=WALL, timing=T).action == "wait"
    assert decide(held_by("b", duration=30), seen, "a", now=80.0, wall=WALL, timing=T).action == "update"


def test_a_released_lease_is_taken_at_once() -> None:
    decision = decide(held_by(""), None, "a", now=50.0, wall=WALL, timing=T)
    assert decision.action == "update"
    assert decision.guard == "100"
    assert decision.spec is not None
    assert decision.spec.holder == "a"


def test_a_deposed_leader_waits_like_any_standby() -> None:
    """We held it, failed to renew, and b took over: we must not write over b's lease."""
    seen = Seen("100", "a", 40.0)
    decision = decide(held_by("b", "120"), seen, "a", now=60.0, wall=WALL, timing=T)
    assert decision.action == "wait"
    assert decision.seen == Seen("120", "b", 60.0)


def test_release_hands_back_only_our_own_lease() -> None:
    ours = held_by("a").spec
    later = WALL + timedelta(seconds=5)
    assert released(ours, "a", later) == LeaseSpec("", 1, WALL, later, 3)
    assert released(held_by("b").spec, "a", later) is None


def test_fencing_stops_acting_before_anyone_can_take_over() -> None:
    """The leader's time runs from the moment its renewal left; a standby's countdown starts
    when it read the renewal, after it was stored: so the leader stops first, by the margin."""
    sent = 100.0
    stored_at = 100.05  # the API server stores it a little later
    read_by_standby = stored_at  # at the very earliest
    standby_may_take = read_by_standby + T.lease_duration
    assert leading_until(sent, T) <= standby_may_take - (T.lease_duration - T.renew_deadline)


@pytest.mark.parametrize(
    ("lease", "renew", "retry"), [(10, 10, 2), (10, 7, 7), (10, 11, 2), (10, 7, 0), (5, 7, 2)]
)
def test_inconsistent_timings_are_refused(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        Timing(lease_duration=lease, renew_deadline=renew, retry_period=retry)


@given(
    holder=st.sampled_from(["a", "b", ""]),
    version=st.sampled_from(["1", "2"]),
    seen_version=st.sampled_from(["1", "2", None]),
    seen_at=st.floats(0, 100),
    elapsed=st.floats(0, 100),
)
def test_never_writes_over_a_live_lease_of_another(
    holder: str, version: str, seen_version: str | None, seen_at: float, elapsed: float
) -> None:
    """Whatever was seen before: a lease held by another is written over only after it stood
    unchanged, as we saw it, for its whole duration; and every update is guarded."""
    seen = Seen(seen_version, "b", seen_at) if seen_version is not None else None
    now = seen_at + elapsed
    decision = decide(held_by(holder, version), seen, "a", now=now, wall=WALL, timing=T)
    if decision.action == "update":
        assert decision.guard == version
        if holder == "b":
            assert seen is not None
            assert seen.version == version
            assert elapsed >= 10
    assert decision.wait > 0 or decision.action != "wait"


def test_lease_names_split_the_namespaces_into_shards() -> None:
    assert lease_name([]) == "aipolicy"
    assert lease_name(["team-b", "team-a"]) == "aipolicy.team-a.team-b"
    assert lease_name(["team-a", "team-b", "team-a"]) == lease_name(["team-b", "team-a"])
    assert lease_name(["team-a"]) != lease_name(["team-b"])
    many = [f"namespace-number-{i:03d}" for i in range(40)]
    long_name = lease_name(many)
    assert len(long_name) <= 253
    assert long_name.startswith("aipolicy.shard-")
    assert long_name == lease_name(list(reversed(many)))


def test_a_lease_deleted_under_a_live_holder_is_recreated_only_after_its_duration() -> None:
    """Someone deletes the Lease by hand: its holder may still act until its deadline, so a
    standby that saw it held waits a lease duration from the disappearance before creating."""
    seen = decide(held_by("b"), None, "a", now=50.0, wall=WALL, timing=T).seen
    gone = decide(None, seen, "a", now=52.0, wall=WALL, timing=T)
    assert gone.action == "wait"
    still = decide(None, gone.seen, "a", now=61.9, wall=WALL, timing=T)
    assert still.action == "wait"
    assert still.wait == pytest.approx(0.1)
    assert decide(None, still.seen, "a", now=62.0, wall=WALL, timing=T).action == "create"


def test_a_fresh_candidate_or_the_holder_itself_recreates_a_missing_lease_at_once() -> None:
    assert decide(None, None, "a", now=50.0, wall=WALL, timing=T).action == "create"
    ours = decide(held_by("a"), None, "a", now=50.0, wall=WALL, timing=T).seen
    assert decide(None, ours, "a", now=51.0, wall=WALL, timing=T).action == "create"
    released_seen = decide(held_by(""), None, "b", now=50.0, wall=WALL, timing=T).seen
    assert decide(None, released_seen, "b", now=51.0, wall=WALL, timing=T).action == "create"
