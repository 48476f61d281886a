"""Session phase core: legal and illegal transitions, minimum recovery, overrun, persistence."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.messages import EventKind, Phase
from controller.core import phases as ph

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
S = ph.PhaseSettings()

LEGAL = {
    (Phase.IDLE, Phase.PRE_CHECK),
    (Phase.PRE_CHECK, Phase.INFUSION),
    (Phase.PRE_CHECK, Phase.IDLE),
    (Phase.INFUSION, Phase.RECOVERY),
    (Phase.RECOVERY, Phase.DISCHARGE_READY),
    (Phase.DISCHARGE_READY, Phase.IDLE),
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def go(state: ph.SessionState, target: Phase, minutes: float) -> ph.SessionState:
    outcome = ph.request(state, target, "nurse", at(minutes), S, "s1")
    assert outcome.refused is None, outcome.refused
    return outcome.state


def state_in(phase: Phase) -> ph.SessionState:
    """A state in `phase`, reached legally; recovery has its minimum already served."""
    state = ph.initial(T0)
    path = {
        Phase.IDLE: [],
        Phase.PRE_CHECK: [Phase.PRE_CHECK],
        Phase.INFUSION: [Phase.PRE_CHECK, Phase.INFUSION],
        Phase.RECOVERY: [Phase.PRE_CHECK, Phase.INFUSION, Phase.RECOVERY],
        Phase.DISCHARGE_READY: [
            Phase.PRE_CHECK,
            Phase.INFUSION,
            Phase.RECOVERY,
            Phase.DISCHARGE_READY,
        ],
    }[phase]
    minute = 0.0
    for target in path:
        state = go(state, target, minute)
        minute += 60  # longer than any minimum
    return state


def test_table_is_exactly_the_design() -> None:
    table = {(a, b) for a, targets in ph.TRANSITIONS.items() for b in targets}
    assert table == LEGAL
    assert set(ph.TRANSITIONS) == set(Phase)


def test_initial_is_idle() -> None:
    state = ph.initial(T0)
    assert state.phase is Phase.IDLE and state.session_id is None and state.since == T0
    assert ph.next_deadline(state, S) is None


@pytest.mark.parametrize(("source", "target"), sorted(LEGAL))
def test_every_legal_transition(source: Phase, target: Phase) -> None:
    state = state_in(source)
    now = state.since + timedelta(hours=2)
    outcome = ph.request(state, target, "alice", now, S, "s-new")
    assert outcome.refused is None
    assert outcome.state.phase is target
    assert outcome.state.since == now
    assert not outcome.state.overrun
    (emit,) = outcome.emits
    assert emit.kind is EventKind.PHASE_CHANGED
    assert (emit.phase, emit.from_phase, emit.by, emit.at) == (target, source, "alice", now)
    if source is Phase.IDLE:
        assert outcome.state.session_id == "s-new" == emit.session_id
    elif target is Phase.IDLE:
        assert outcome.state.session_id is None
        assert emit.session_id == "s1"  # the event names the session that ended
    else:
        assert outcome.state.session_id == "s1" == emit.session_id


ILLEGAL = [(a, b) for a, b in itertools.product(Phase, Phase) if (a, b) not in LEGAL and a is not b]


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_every_illegal_transition_is_refused(source: Phase, target: Phase) -> None:
    state = state_in(source)
    outcome = ph.request(state, target, "alice", state.since + timedelta(hours=2), S, "x")
    assert outcome.state == state
    assert outcome.refused is not None
    assert outcome.refused.startswith(f"cannot go from {source.value} to {target.value}")
    (emit,) = outcome.emits
    assert emit.kind is EventKind.PHASE_REFUSED
    assert (emit.phase, emit.from_phase, emit.reason) == (target, source, outcome.refused)


def test_refusal_text_lists_allowed() -> None:
    outcome = ph.request(state_in(Phase.INFUSION), Phase.IDLE, "a", at(500), S, "x")
    assert outcome.refused == "cannot go from infusion to idle; allowed: recovery"
    outcome = ph.request(state_in(Phase.PRE_CHECK), Phase.RECOVERY, "a", at(500), S, "x")
    assert outcome.refused == "cannot go from pre_check to recovery; allowed: idle, infusion"


@pytest.mark.parametrize("phase", list(Phase))
def test_same_phase_is_refused(phase: Phase) -> None:
    state = state_in(phase)
    outcome = ph.request(state, phase, "a", at(500), S, "x")
    assert outcome.refused == f"already in {phase.value}"
    assert outcome.state == state


def test_recovery_minimum_refuses_with_minutes_remaining() -> None:
    state = go(go(go(ph.initial(T0), Phase.PRE_CHECK, 0), Phase.INFUSION, 10), Phase.RECOVERY, 60)
    assert state.min_recovery_end == at(90)
    outcome = ph.request(state, Phase.DISCHARGE_READY, "a", at(78), S, "x")
    assert outcome.refused == "recovery must last 30 min; 12 min remain"
    assert outcome.state == state
    assert outcome.emits[0].kind is EventKind.PHASE_REFUSED
    # 30 s left still says 1 min (rounded up), and at the minimum it is allowed.
    outcome = ph.request(state, Phase.DISCHARGE_READY, "a", at(89.5), S, "x")
    assert outcome.refused == "recovery must last 30 min; 1 min remain"
    outcome = ph.request(state, Phase.DISCHARGE_READY, "a", at(90), S, "x")
    assert outcome.refused is None
    assert outcome.state.min_recovery_end is None


def test_illegal_target_in_recovery_names_transition_not_minimum() -> None:
    state = go(go(go(ph.initial(T0), Phase.PRE_CHECK, 0), Phase.INFUSION, 10), Phase.RECOVERY, 60)
    outcome = ph.request(state, Phase.IDLE, "a", at(61), S, "x")
    assert outcome.refused == "cannot go from recovery to idle; allowed: discharge_ready"


def test_planned_ends_from_settings() -> None:
    pre = go(ph.initial(T0), Phase.PRE_CHECK, 0)
    assert pre.planned_end == at(15)
    inf = go(pre, Phase.INFUSION, 10)
    assert inf.planned_end == at(60)
    rec = go(inf, Phase.RECOVERY, 60)
    assert rec.planned_end == at(105)
    dis = go(rec, Phase.DISCHARGE_READY, 100)
    assert dis.planned_end is None
    assert ph.next_deadline(dis, S) is None


def test_planned_minutes_override() -> None:
    pre = go(ph.initial(T0), Phase.PRE_CHECK, 0)
    outcome = ph.request(pre, Phase.INFUSION, "a", at(10), S, "x", planned_minutes=40)
    assert outcome.state.planned_end == at(50)
    assert outcome.emits[0].detail["planned_minutes"] == 40
    # A planned recovery shorter than the minimum is lengthened to it.
    rec = ph.request(outcome.state, Phase.RECOVERY, "a", at(50), S, "x", planned_minutes=10)
    assert rec.state.planned_end == at(80)


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_planned_minutes_refused(bad: float) -> None:
    pre = go(ph.initial(T0), Phase.PRE_CHECK, 0)
    outcome = ph.request(pre, Phase.INFUSION, "a", at(10), S, "x", planned_minutes=bad)
    assert outcome.refused is not None and "planned_minutes" in outcome.refused
    assert outcome.state == pre


def test_new_session_needs_id() -> None:
    outcome = ph.request(ph.initial(T0), Phase.PRE_CHECK, "a", T0, S, " ")
    assert outcome.refused is not None
    assert outcome.state.phase is Phase.IDLE


def test_abort_from_pre_check_is_marked() -> None:
    outcome = ph.request(state_in(Phase.PRE_CHECK), Phase.IDLE, "a", at(5), S, "x")
    assert outcome.emits[0].detail["aborted"] is True


def test_session_id_kept_through_session_and_new_one_after() -> None:
    state = ph.initial(T0)
    for minute, target in enumerate(
        [Phase.PRE_CHECK, Phase.INFUSION, Phase.RECOVERY, Phase.DISCHARGE_READY]
    ):
        state = ph.request(state, target, "a", at(minute * 60), S, f"ignored{minute}").state
        assert state.session_id == "ignored0"
    state = ph.request(state, Phase.IDLE, "a", at(300), S, "zzz").state
    assert state.session_id is None
    state = ph.request(state, Phase.PRE_CHECK, "a", at(301), S, "s2").state
    assert state.session_id == "s2"


# -- overrun ---------------------------------------------------------------------------


def test_overrun_at_planned_end_then_reminders() -> None:
    inf = go(go(ph.initial(T0), Phase.PRE_CHECK, 0), Phase.INFUSION, 10)  # planned end 60
    assert ph.next_deadline(inf, S) == at(60)
    same, emits = ph.tick(inf, at(60) - timedelta(microseconds=1), S)
    assert same == inf and emits == ()
    over, emits = ph.tick(inf, at(60), S)
    assert over.overrun
    (emit,) = emits
    assert emit.kind is EventKind.PHASE_OVERRUN
    assert emit.phase is Phase.INFUSION and emit.session_id == "s1"
    assert emit.detail["minutes_over"] == 0 and emit.detail["reminder"] == 0
    assert ph.next_deadline(over, S) == at(65)
    quiet, emits = ph.tick(over, at(64), S)
    assert quiet == over and emits == ()
    again, emits = ph.tick(over, at(65), S)
    assert emits[0].detail == {
        "minutes_over": 5,
        "reminder": 1,
        "planned_end": at(60).isoformat(),
    }
    assert ph.next_deadline(again, S) == at(70)


def test_late_tick_gives_one_reminder_and_keeps_schedule() -> None:
    inf = go(go(ph.initial(T0), Phase.PRE_CHECK, 0), Phase.INFUSION, 10)
    over, emits = ph.tick(inf, at(72), S)
    assert len(emits) == 1 and emits[0].detail["minutes_over"] == 12
    assert ph.next_deadline(over, S) == at(75)
    later, emits = ph.tick(over, at(99), S)
    assert len(emits) == 1 and emits[0].detail["reminder"] == 7
    assert ph.next_deadline(later, S) == at(100)


def test_transition_clears_overrun() -> None:
    inf = go(go(ph.initial(T0), Phase.PRE_CHECK, 0), Phase.INFUSION, 10)
    over, _ = ph.tick(inf, at(70), S)
    rec = go(over, Phase.RECOVERY, 71)
    assert not rec.overrun and rec.next_reminder_at is None
    assert ph.next_deadline(rec, S) == at(116)


@pytest.mark.parametrize("phase", [Phase.IDLE, Phase.DISCHARGE_READY])
def test_untimed_phases_never_overrun(phase: Phase) -> None:
    state = state_in(phase)
    assert ph.tick(state, at(100_000), S) == (state, ())


def test_pre_check_and_recovery_overrun_too() -> None:
    pre = go(ph.initial(T0), Phase.PRE_CHECK, 0)
    assert ph.tick(pre, at(15), S)[1][0].kind is EventKind.PHASE_OVERRUN
    rec = go(go(pre, Phase.INFUSION, 10), Phase.RECOVERY, 60)
    assert ph.tick(rec, at(105), S)[1][0].phase is Phase.RECOVERY


def test_zero_reminder_period_means_single_notice() -> None:
    quiet = ph.PhaseSettings(reminder_every_s=0)
    pre = ph.request(ph.initial(T0), Phase.PRE_CHECK, "a", T0, quiet, "s").state
    over, emits = ph.tick(pre, at(20), quiet)
    assert len(emits) == 1
    assert ph.next_deadline(over, quiet) is None


# -- persistence -----------------------------------------------------------------------


@pytest.mark.parametrize("phase", list(Phase))
def test_round_trip_through_json(phase: Phase) -> None:
    state = state_in(phase)
    over, _ = ph.tick(state, at(10_000), S)
    for candidate in (state, over):
        data = json.loads(json.dumps(ph.to_dict(candidate)))
        assert ph.from_dict(data) == candidate


@pytest.mark.parametrize(
    "data",
    [
        {"phase": "lunch", "since": T0.isoformat()},
        {"phase": "idle"},
        {"phase": "idle", "since": "2026-11-25T08:00:00"},
        {"phase": "infusion", "session_id": None, "since": T0.isoformat()},
        {"phase": "idle", "session_id": "s", "since": T0.isoformat()},
        {"phase": "idle", "since": T0.isoformat(), "overrun": "yes"},
    ],
)
def test_from_dict_rejects_corrupt(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ph.from_dict(data)


# -- property: random requests and ticks never break the invariants -------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(list(Phase)), st.none()),
            st.floats(min_value=0, max_value=40),
        ),
        max_size=40,
    )
)
def test_random_walk_keeps_invariants(steps: list[tuple[Phase | None, float]]) -> None:
    state = ph.initial(T0)
    now = T0
    for target, advance in steps:
        now += timedelta(minutes=advance)
        if target is None:
            new, emits = ph.tick(state, now, S)
            assert len(emits) <= 1
            deadline = ph.next_deadline(new, S)
            assert deadline is None or deadline > now
        else:
            outcome = ph.request(state, target, "a", now, S, "sid")
            new, emits = outcome.state, outcome.emits
            assert len(emits) == 1
            if outcome.refused is None:
                assert (state.phase, target) in LEGAL
                if state.phase is Phase.RECOVERY:
                    assert state.min_recovery_end is not None and now >= state.min_recovery_end
            else:
                assert new == state
        assert (new.phase is Phase.IDLE) == (new.session_id is None)
        assert (new.planned_end is not None) == (new.phase in ph.TIMED_PHASES)
        assert (new.min_recovery_end is not None) == (new.phase is Phase.RECOVERY)
        assert ph.from_dict(json.loads(json.dumps(ph.to_dict(new)))) == new
        state = new
