"""The status an object gets when its spec cannot be acted on: InvalidSpec, at its generation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aipolicy.controllers.events import invalid_spec_status

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_invalid_spec_records_the_generation_it_was_read_from() -> None:
    """kstatus and Argo CD wait for observedGeneration == metadata.generation; without it an
    InvalidSpec object looks forever 'in progress' instead of failed."""
    old = {"observedGeneration": 1, "mode": "Normal", "conditions": []}
    new, changed = invalid_spec_status(old, "spec.x: bad", generation=4, now=NOW)
    assert new["observedGeneration"] == 4
    assert new["mode"] == "Normal"  # the rest of status is kept as last written
    ready, stalled = new["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert ready["observedGeneration"] == 4 and ready["message"] == "spec.x: bad"
    # Stalled tells kstatus the object failed; its change is told by Ready's one event
    assert (stalled["type"], stalled["status"], stalled["reason"]) == ("Stalled", "True", "InvalidSpec")
    assert [(c.type, c.reason) for c in changed.changed] == [("Ready", "InvalidSpec")]


def test_the_same_invalid_spec_changes_nothing_the_next_time() -> None:
    first, _ = invalid_spec_status({}, "spec.x: bad", generation=2, now=NOW)
    again, changed = invalid_spec_status(first, "spec.x: bad", generation=2, now=NOW + timedelta(seconds=5))
    assert again == first and changed.changed == []


def test_a_new_generation_still_invalid_moves_observed_generation_on() -> None:
    first, _ = invalid_spec_status({}, "spec.x: bad", generation=2, now=NOW)
    later, changed = invalid_spec_status(first, "spec.y: bad", generation=3, now=NOW)
    assert later["observedGeneration"] == 3
    assert later["conditions"][0]["observedGeneration"] == 3
    assert changed.changed == []  # same status and reason: no second event
