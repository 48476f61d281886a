"""Call lifecycle core: every transition, refusals, tiers at their deadlines, reminders,
several calls at once, persistence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.messages import CallPriority, CallStatus, CallType, EventKind, Phase
from controller.core import call_lifecycle as cl
from controller.core import call_types

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
SETTINGS = cl.CallSettings()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def placed(phase: Phase = Phase.IDLE, call_id: str = "c1") -> cl.CallState:
    state, _ = cl.press(cl.idle(), T0, phase, call_id)
    return state


# -- press / emergency -----------------------------------------------------------------


def test_idle_state_is_empty() -> None:
    state = cl.idle()
    assert state.status is CallStatus.IDLE
    assert not state.active
    assert (state.call_id, state.priority, state.placed_at) == (None, None, None)


@pytest.mark.parametrize(
    ("phase", "priority"),
    [
        (Phase.IDLE, CallPriority.NORMAL),
        (Phase.PRE_CHECK, CallPriority.NORMAL),
        (Phase.INFUSION, CallPriority.INFUSION),
        (Phase.RECOVERY, CallPriority.NORMAL),
        (Phase.DISCHARGE_READY, CallPriority.NORMAL),
    ],
)
def test_press_from_idle_places_call_with_phase_priority(
    phase: Phase, priority: CallPriority
) -> None:
    state, emits = cl.press(cl.idle(), T0, phase, "c1")
    assert state.status is CallStatus.PLACED
    assert state.priority is priority
    assert state.call_id == "c1"
    assert state.placed_at == T0
    assert [e.kind for e in emits] == [EventKind.CALL_PLACED]
    assert emits[0].call_id == "c1" and emits[0].priority is priority and emits[0].at == T0


def test_press_during_infusion_raises_active_normal_call() -> None:
    state = placed(Phase.RECOVERY)
    raised, emits = cl.press(state, at(5), Phase.INFUSION, "c2")
    assert raised.priority is CallPriority.INFUSION
    assert raised.call_id == "c1"
    assert raised.status is CallStatus.PLACED
    assert raised.placed_at == T0
    assert [e.kind for e in emits] == [EventKind.CALL_PRIORITY_RAISED]
    assert emits[0].detail["from_priority"] == "normal"
    assert emits[0].priority is CallPriority.INFUSION


def test_second_press_same_priority_changes_nothing() -> None:
    state = placed(Phase.INFUSION)
    again, emits = cl.press(state, at(1), Phase.INFUSION, "c2")
    assert again == state
    assert emits == ()


def test_press_never_lowers_priority() -> None:
    state = placed(Phase.INFUSION)
    again, emits = cl.press(state, at(1), Phase.RECOVERY, "c2")
    assert again.priority is CallPriority.INFUSION
    assert emits == ()


def test_emergency_from_idle() -> None:
    state, emits = cl.emergency(cl.idle(), T0, "e1")
    assert (state.status, state.priority, state.call_id) == (
        CallStatus.PLACED,
        CallPriority.EMERGENCY,
        "e1",
    )
    assert [e.kind for e in emits] == [EventKind.CALL_PLACED]


def test_emergency_raises_claimed_call_and_keeps_claim() -> None:
    state = cl.claim(placed(), "c1", "alice", at(10)).state
    raised, emits = cl.emergency(state, at(20), "e1")
    assert raised.status is CallStatus.CLAIMED
    assert raised.claimed_by == "alice"
    assert raised.call_id == "c1"
    assert raised.priority is CallPriority.EMERGENCY
    assert [e.kind for e in emits] == [EventKind.CALL_PRIORITY_RAISED]


def test_emergency_on_emergency_is_no_op() -> None:
    state, _ = cl.emergency(cl.idle(), T0, "e1")
    again, emits = cl.emergency(state, at(1), "e2")
    assert again == state and emits == ()


def test_press_after_emergency_adds_a_patient_call_below_it() -> None:
    state, _ = cl.emergency(cl.idle(), T0, "e1")
    again, emits = cl.press(state, at(1), Phase.INFUSION, "x")
    assert [c.call_id for c in again.calls] == ["e1", "x"]
    assert again.priority is CallPriority.EMERGENCY
    assert [e.kind for e in emits] == [EventKind.CALL_PLACED]


# -- claim -----------------------------------------------------------------------------


def test_claim_placed_call() -> None:
    outcome = cl.claim(placed(), "c1", "alice", at(42))
    assert outcome.refused is None
    assert outcome.state.status is CallStatus.CLAIMED
    assert outcome.state.claimed_by == "alice"
    assert outcome.state.claimed_at == at(42)
    (emit,) = outcome.emits
    assert emit.kind is EventKind.CALL_CLAIMED
    assert emit.by == "alice" and emit.call_id == "c1" and emit.priority is CallPriority.NORMAL
    assert emit.detail["response_s"] == 42.0


def test_claim_escalated_call_keeps_escalated_at() -> None:
    state, _ = cl.tick(placed(), at(180), SETTINGS)
    assert state.status is CallStatus.ESCALATED
    outcome = cl.claim(state, "c1", "bob", at(200))
    assert outcome.refused is None
    assert outcome.state.status is CallStatus.CLAIMED
    assert outcome.state.escalated_at == at(180)
    assert outcome.emits[0].detail["was_escalated"] is True


def test_claim_by_someone_else_is_refused_naming_holder() -> None:
    state = cl.claim(placed(), "c1", "alice", at(10)).state
    outcome = cl.claim(state, "c1", "bob", at(11))
    assert outcome.state == state
    assert outcome.refused is not None and "alice" in outcome.refused
    (emit,) = outcome.emits
    assert emit.kind is EventKind.COMMAND_REFUSED
    assert emit.by == "bob" and emit.call_id == "c1" and emit.reason == outcome.refused


def test_repeated_claim_by_holder_is_silent() -> None:
    state = cl.claim(placed(), "c1", "alice", at(10)).state
    outcome = cl.claim(state, "c1", "alice", at(11))
    assert outcome.state == state
    assert outcome.refused is None
    assert outcome.emits == ()


def test_claim_wrong_id_refused() -> None:
    state = placed()
    outcome = cl.claim(state, "old", "alice", at(1))
    assert outcome.state == state
    assert outcome.refused is not None and "old" in outcome.refused and "c1" in outcome.refused
    assert outcome.emits[0].kind is EventKind.COMMAND_REFUSED
    assert outcome.emits[0].priority is None


def test_claim_when_idle_refused() -> None:
    outcome = cl.claim(cl.idle(), "c1", "alice", T0)
    assert outcome.state == cl.idle()
    assert outcome.refused is not None and "not active" in outcome.refused


def test_claim_stale_id_after_cancel_refused() -> None:
    state, _ = cl.cancel(placed(), at(5))
    new, _ = cl.press(state, at(6), Phase.IDLE, "c2")
    outcome = cl.claim(new, "c1", "alice", at(7))
    assert outcome.refused is not None
    assert outcome.state.status is CallStatus.PLACED


def test_claim_with_blank_name_refused() -> None:
    outcome = cl.claim(placed(), "c1", "  ", at(1))
    assert outcome.refused is not None
    assert outcome.state.status is CallStatus.PLACED


# -- cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [CallStatus.PLACED, CallStatus.ESCALATED, CallStatus.CLAIMED])
def test_cancel_active_call(status: CallStatus) -> None:
    state = placed()
    if status is CallStatus.ESCALATED:
        state, _ = cl.tick(state, at(180), SETTINGS)
    elif status is CallStatus.CLAIMED:
        state = cl.claim(state, "c1", "alice", at(30)).state
    assert state.status is status
    new, emits = cl.cancel(state, at(240))
    assert new == cl.idle()
    (emit,) = emits
    assert emit.kind is EventKind.CALL_CANCELLED
    assert emit.call_id == "c1" and emit.priority is CallPriority.NORMAL
    # response: placed -> claim, or placed -> the end when nobody claimed it
    assert emit.detail["response_s"] == (30.0 if status is CallStatus.CLAIMED else 240.0)
    assert emit.detail["resolved_s"] == 240.0
    assert emit.detail["status"] == status.value
    assert emit.detail["ended_by"] == "cancel"


def test_cancel_idle_emits_nothing() -> None:
    assert cl.cancel(cl.idle(), T0) == (cl.idle(), ())


# -- escalation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "make", "after"),
    [
        (Phase.IDLE, "press", 180),
        (Phase.INFUSION, "press", 90),
        (Phase.IDLE, "emergency", 30),
    ],
)
def test_escalates_at_exactly_the_deadline(phase: Phase, make: str, after: float) -> None:
    if make == "press":
        state, _ = cl.press(cl.idle(), T0, phase, "c1")
    else:
        state, _ = cl.emergency(cl.idle(), T0, "c1")
    assert cl.next_deadline(state, SETTINGS) == at(after)
    before, emits = cl.tick(state, at(after) - timedelta(microseconds=1), SETTINGS)
    assert before == state and emits == ()
    new, emits = cl.tick(state, at(after), SETTINGS)
    assert new.status is CallStatus.ESCALATED
    assert new.escalated_at == at(after)
    assert [e.kind for e in emits] == [EventKind.CALL_ESCALATED]
    assert emits[0].detail["waited_s"] == after and emits[0].detail["tier"] == 2
    assert new.calls[0].tier == 2
    assert cl.next_deadline(new, SETTINGS) == at(2 * after)  # tier 2 -> 3


def test_climbs_to_tier_three_then_stops() -> None:
    state, _ = cl.tick(placed(), at(180), SETTINGS)
    top, emits = cl.tick(state, at(360), SETTINGS)
    assert top.calls[0].tier == 3 and top.escalated_at == at(180)
    assert [e.detail["tier"] for e in emits] == [3]
    again, emits = cl.tick(top, at(10_000), SETTINGS)
    assert again == top and emits == ()
    assert cl.next_deadline(top, SETTINGS) is None


def test_late_tick_climbs_every_tier_due() -> None:
    state, emits = cl.tick(placed(), at(1000), SETTINGS)
    assert state.calls[0].tier == 3
    assert [e.detail["tier"] for e in emits] == [2, 3]


def test_claimed_call_never_climbs_but_reminds() -> None:
    state = cl.claim(placed(), "c1", "alice", at(10)).state
    assert cl.next_deadline(state, SETTINGS) == at(310)  # the normal row's 300 s reminder
    quiet, emits = cl.tick(state, at(309), SETTINGS)
    assert quiet == state and emits == ()
    first, emits = cl.tick(state, at(310), SETTINGS)
    assert [e.kind for e in emits] == [EventKind.CALL_REMINDER]
    assert emits[0].detail["reminders"] == 1 and emits[0].by == "alice"
    assert first.calls[0].tier == 1 and first.status is CallStatus.CLAIMED
    assert cl.next_deadline(first, SETTINGS) == at(610)  # and again at that interval
    second, emits = cl.tick(first, at(610), SETTINGS)
    assert second.calls[0].reminders == 2 and len(emits) == 1


def test_raise_to_emergency_uses_emergency_deadline_from_placed_at() -> None:
    state, _ = cl.emergency(placed(), at(60), "e1")
    assert cl.next_deadline(state, SETTINGS) == at(30)
    new, emits = cl.tick(state, at(61), SETTINGS)
    assert new.status is CallStatus.ESCALATED
    assert emits[0].priority is CallPriority.EMERGENCY


def test_custom_table_rows() -> None:
    table = call_types.with_overrides(
        call_types.default_table(), {CallType.NORMAL: {"tier_s": [5, 7], "reminder_s": None}}
    )
    custom = cl.CallSettings(table)
    assert cl.next_deadline(placed(), custom) == at(5)
    state, _ = cl.tick(placed(), at(5), custom)
    assert cl.next_deadline(state, custom) == at(12)


def test_idle_tick_does_nothing() -> None:
    assert cl.tick(cl.idle(), at(999), SETTINGS) == (cl.idle(), ())
    assert cl.next_deadline(cl.idle(), SETTINGS) is None


def test_naive_datetime_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        cl.press(cl.idle(), datetime(2026, 1, 1), Phase.IDLE, "c1")


def test_transitions_table_matches_behaviour() -> None:
    assert cl.TRANSITIONS[CallStatus.IDLE] == {CallStatus.PLACED}
    assert CallStatus.PLACED not in cl.TRANSITIONS[CallStatus.CLAIMED]
    assert CallStatus.ESCALATED not in cl.TRANSITIONS[CallStatus.CLAIMED]


# -- persistence -----------------------------------------------------------------------


def _states() -> list[cl.CallState]:
    p = placed(Phase.INFUSION)
    e, _ = cl.tick(p, at(90), SETTINGS)
    c = cl.claim(e, "c1", "alice", at(100)).state
    r, _ = cl.tick(c, at(1000), SETTINGS)
    two, _ = cl.place(r, CallType.BATH, at(1001), Phase.INFUSION, "b1", SETTINGS)
    return [cl.idle(), p, e, c, r, two]


def test_restores_a_call_saved_before_call_types() -> None:
    old = {
        "call_id": "c1",
        "priority": "emergency",
        "status": "escalated",
        "placed_at": "2026-11-25T08:00:00.000Z",
        "claimed_by": None,
        "claimed_at": None,
        "escalated_at": "2026-11-25T08:00:30.000Z",
    }
    state = cl.from_dict(old)
    (call,) = state.calls
    assert (call.type, call.tier, call.status) == (CallType.EMERGENCY, 2, CallStatus.ESCALATED)
    assert cl.from_dict({"status": "idle", "call_id": None}) == cl.idle()


@pytest.mark.parametrize("state", _states())
def test_round_trip_through_json(state: cl.CallState) -> None:
    data = json.loads(json.dumps(cl.to_dict(state)))
    assert cl.from_dict(data) == state


@pytest.mark.parametrize(
    "data",
    [
        {"status": "bogus"},
        {"status": "placed", "call_id": "c1", "priority": "normal"},
        {"status": "claimed", "call_id": "c1", "priority": "normal", "placed_at": T0.isoformat()},
        {"status": "placed", "call_id": 5, "priority": "normal", "placed_at": T0.isoformat()},
        {"status": "placed", "call_id": "c", "priority": "normal", "placed_at": "2026-01-01T00:00"},
    ],
)
def test_from_dict_rejects_corrupt_data(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        cl.from_dict(data)


# -- property: any sequence of events keeps the invariants -----------------------------

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "press",
                "emergency",
                "bath",
                "assist",
                "claim",
                "claim_other",
                "claim_stale",
                "cancel",
            ]
        ),
        st.sampled_from(list(Phase)),
        st.floats(min_value=0, max_value=400),
    ),
    max_size=30,
)


def _check_invariants(state: cl.CallState) -> None:
    if state.status is CallStatus.IDLE:
        assert state == cl.idle()
        return
    ranks = [call_types.rank(c.priority) for c in state.calls]
    assert ranks == sorted(ranks, reverse=True)  # highest first
    assert len({c.type for c in state.calls}) == len(state.calls)  # one call per type
    for call in state.calls:
        assert (call.status is CallStatus.CLAIMED) == (call.claimed_by is not None)
        assert (call.claimed_at is None) == (call.claimed_by is None)
        assert (call.tier > 1) == (call.escalated_at is not None)
        if call.status is CallStatus.ESCALATED:
            assert call.escalated_at is not None
    assert cl.from_dict(json.loads(json.dumps(cl.to_dict(state)))) == state


@settings(max_examples=300, deadline=None)
@given(ACTIONS)
def test_any_event_sequence_keeps_invariants(actions: list[tuple[str, Phase, float]]) -> None:
    state = cl.idle()
    now = T0
    for counter, (action, phase, advance) in enumerate(actions):
        now += timedelta(seconds=advance)
        before = state
        state, emits = cl.tick(state, now, SETTINGS)
        _check_invariants(state)
        new_id = f"c{counter}"
        if action == "press":
            state, emits = cl.press(state, now, phase, new_id)
        elif action == "emergency":
            state, emits = cl.emergency(state, now, new_id)
        elif action in ("bath", "assist"):
            state, emits = cl.place(state, CallType(action), now, phase, new_id, SETTINGS)
        elif action == "cancel":
            state, emits = cl.cancel(state, now)
        else:
            who = "bob" if action == "claim_other" else "alice"
            cid = "stale" if action == "claim_stale" else (state.call_id or "none")
            ticked = state
            outcome = cl.claim(state, cid, who, now)
            state, emits = outcome.state, outcome.emits
            assert (outcome.refused is None) or state == ticked
        _check_invariants(state)
        for emit in emits:
            assert emit.at == now
            assert emit.call_id is not None
            if emit.kind is not EventKind.COMMAND_REFUSED:
                assert emit.priority is not None
        # Priority never falls and the placed time never changes within one call.
        for call in state.calls:
            old = before.by_id(call.call_id)
            if old is not None:
                assert call_types.rank(call.priority) >= call_types.rank(old.priority)
                assert call.placed_at == old.placed_at
