"""Vital alerts core: persistence, hysteresis, missing values, phases, persistence to dict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.messages import ActiveAlert, EventKind, Phase
from controller.core import alerts as al

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
INF = Phase.INFUSION


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def feed(
    state: al.AlertState,
    readings: list[tuple[float, dict[str, float | None]]],
    phase: Phase = INF,
    rules: al.RuleTable = al.DEFAULT_RULES,
) -> tuple[al.AlertState, list[al.Emit]]:
    emits: list[al.Emit] = []
    for second, values in readings:
        state, new = al.evaluate(state, values, at(second), phase, rules)
        emits.extend(new)
    return state, emits


def spo2(*pairs: tuple[float, float | None]) -> list[tuple[float, dict[str, float | None]]]:
    return [(t, {"spo2": v}) for t, v in pairs]


def test_default_rules_cover_the_design() -> None:
    assert al.DEFAULT_RULES[Phase.IDLE] == ()
    for phase in (Phase.INFUSION, Phase.RECOVERY):
        by_name = {r.name: r for r in al.DEFAULT_RULES[phase]}
        assert (by_name["spo2_low"].op, by_name["spo2_low"].threshold) == ("below", 92)
        assert (by_name["sys_high"].op, by_name["sys_high"].threshold) == ("above", 180)
        assert (by_name["hr_high"].op, by_name["hr_high"].threshold) == ("above", 130)
        assert by_name["hr_high"].fallback_field == "pulse_rate"
        assert (by_name["rr_low"].op, by_name["rr_low"].threshold) == ("below", 8)
    for phase in al.DEFAULT_RULES:
        names = [r.name for r in al.DEFAULT_RULES[phase]]
        assert len(names) == len(set(names))


def test_raises_only_after_persistence() -> None:
    state, emits = feed(al.initial(), spo2((0, 91), (5, 90), (9.999, 89)))
    assert emits == []
    assert state.pending == {"spo2_low": T0}
    state, emits = feed(state, spo2((10, 90)))
    (emit,) = emits
    assert emit.kind is EventKind.ALERT_RAISED
    assert emit.at == at(10) and emit.phase is INF
    assert emit.detail["name"] == "spo2_low"
    assert emit.detail["field"] == "spo2"
    assert emit.detail["value"] == 90
    assert emit.detail["threshold"] == 92
    assert emit.detail["held_s"] == 10
    assert state.pending == {}
    assert state.active["spo2_low"] == ActiveAlert(
        name="spo2_low", field="spo2", severity="high", value=90, threshold=92, since=at(10)
    )


def test_interruption_resets_persistence() -> None:
    state, emits = feed(al.initial(), spo2((0, 91), (6, 93), (7, 91), (16, 91)))
    assert emits == []
    assert state.pending == {"spo2_low": at(7)}
    state, emits = feed(state, spo2((17, 91)))
    assert [e.kind for e in emits] == [EventKind.ALERT_RAISED]


def test_threshold_itself_is_not_a_breach() -> None:
    state, emits = feed(al.initial(), spo2((0, 92), (30, 92)))
    assert emits == [] and state == al.initial()


def test_none_resets_pending_and_never_raises() -> None:
    state, emits = feed(al.initial(), spo2((0, 91), (5, None), (12, 91)))
    assert emits == []
    assert state.pending == {"spo2_low": at(12)}
    state, emits = feed(state, [(20, {})])  # absent = not measured
    assert state.pending == {}


def test_none_and_nan_never_clear_active() -> None:
    state, _ = feed(al.initial(), spo2((0, 88), (10, 88)))
    assert "spo2_low" in state.active
    state, emits = feed(state, spo2((11, None), (12, float("nan"))))
    assert emits == [] and "spo2_low" in state.active


def test_hysteresis_no_flapping_around_threshold() -> None:
    state, _ = feed(al.initial(), spo2((0, 90), (10, 90)))
    wobble = [(11 + i, [91.0, 92.0, 93.0, 93.9][i % 4]) for i in range(40)]
    state, emits = feed(state, [(t, {"spo2": v}) for t, v in wobble])
    assert emits == []
    assert "spo2_low" in state.active
    state, emits = feed(state, spo2((60, 94)))
    (emit,) = emits
    assert emit.kind is EventKind.ALERT_CLEARED
    assert emit.detail["name"] == "spo2_low" and emit.detail["value"] == 94
    assert emit.detail["active_s"] == 50
    assert state.active == {}


def test_above_rule_hysteresis() -> None:
    state, emits = feed(al.initial(), [(0, {"nibp_sys": 181})])  # persistence 0
    assert [e.kind for e in emits] == [EventKind.ALERT_RAISED]
    state, emits = feed(state, [(100, {"nibp_sys": 176})])
    assert emits == []
    state, emits = feed(state, [(200, {"nibp_sys": 175})])
    assert [e.kind for e in emits] == [EventKind.ALERT_CLEARED]


def test_heart_rate_falls_back_to_pulse_rate() -> None:
    readings: list[tuple[float, dict[str, float | None]]] = [
        (0, {"heart_rate": None, "pulse_rate": 140}),
        (10, {"pulse_rate": 141}),
    ]
    state, emits = feed(al.initial(), readings)
    (emit,) = emits
    assert emit.detail["field"] == "pulse_rate"
    assert state.active["hr_high"].field == "pulse_rate"
    # heart_rate wins when present: 120 clears (<= 125) even if pulse_rate says 140.
    state, emits = feed(state, [(11, {"heart_rate": 120, "pulse_rate": 140})])
    assert [e.kind for e in emits] == [EventKind.ALERT_CLEARED]


def test_idle_has_no_alerts() -> None:
    state, emits = feed(al.initial(), spo2((0, 50), (60, 50)), phase=Phase.IDLE)
    assert emits == [] and state == al.initial()


def test_pre_check_is_looser() -> None:
    state, emits = feed(al.initial(), spo2((0, 91), (60, 91)), phase=Phase.PRE_CHECK)
    assert emits == []
    state, emits = feed(state, spo2((61, 89), (76, 89)), phase=Phase.PRE_CHECK)
    assert [e.kind for e in emits] == [EventKind.ALERT_RAISED]


def test_several_rules_independent_and_sorted() -> None:
    readings: list[tuple[float, dict[str, float | None]]] = [
        (0, {"spo2": 85, "nibp_sys": 190}),
        (10, {"spo2": 85}),
    ]
    state, emits = feed(al.initial(), readings)
    assert [e.detail["name"] for e in emits] == ["sys_high", "spo2_low"]
    assert [a.name for a in al.active_list(state)] == ["sys_high", "spo2_low"]


def test_phase_change_clears_alerts_without_rule() -> None:
    state, _ = feed(al.initial(), spo2((0, 85), (10, 85)))
    state, _ = feed(state, [(11, {"resp_rate": 4})])
    assert state.pending == {"rr_low": at(11)}
    new, emits = al.on_phase_change(state, Phase.IDLE, at(20))
    assert new == al.initial()
    (emit,) = emits
    assert emit.kind is EventKind.ALERT_CLEARED
    assert emit.detail["name"] == "spo2_low" and emit.detail["value"] is None
    assert emit.reason is not None and "idle" in emit.reason


def test_phase_change_keeps_alert_with_same_rule() -> None:
    state, _ = feed(al.initial(), spo2((0, 85), (10, 85)))
    new, emits = al.on_phase_change(state, Phase.RECOVERY, at(20))
    assert emits == () and new.active == state.active


def test_evaluate_also_drops_orphans() -> None:
    state, _ = feed(al.initial(), [(0, {"resp_rate": 4}), (15, {"resp_rate": 4})])
    assert "rr_low" in state.active
    state, emits = feed(state, [(16, {"resp_rate": 4})], phase=Phase.PRE_CHECK)
    assert [e.kind for e in emits] == [EventKind.ALERT_CLEARED]
    assert state.active == {}


def test_custom_rules() -> None:
    rules = {INF: (al.AlertRule("t_high", "temp_c", "above", 38.0, 0, 0.5, "low"),)}
    state, emits = feed(al.initial(), [(0, {"temp_c": 38.2})], rules=rules)
    assert state.active["t_high"].severity == "low"
    state, emits = feed(state, [(1, {"temp_c": 37.6})], rules=rules)
    assert emits == []
    state, emits = feed(state, [(2, {"temp_c": 37.5})], rules=rules)
    assert state.active == {}


@pytest.mark.parametrize("state_maker", ["empty", "pending", "active"])
def test_round_trip_through_json(state_maker: str) -> None:
    state = al.initial()
    if state_maker != "empty":
        state, _ = feed(state, spo2((0.123456, 85)))
    if state_maker == "active":
        state, _ = feed(state, spo2((10.654321, 85)), rules=al.DEFAULT_RULES)
        state, _ = feed(state, [(11, {"resp_rate": 4})])
    data = json.loads(json.dumps(al.to_dict(state)))
    assert al.from_dict(data) == state


@pytest.mark.parametrize(
    "data",
    [
        {"pending": [], "active": {}},
        {"pending": {"x": "not a time"}, "active": {}},
        {
            "pending": {},
            "active": {
                "a": {"name": "b", "field": "spo2", "threshold": 1, "since": T0.isoformat()}
            },
        },
        {"pending": {}, "active": {"a": {"name": "a"}}},
    ],
)
def test_from_dict_rejects_corrupt(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        al.from_dict(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=5),
            st.one_of(st.none(), st.floats(min_value=80, max_value=100)),
        ),
        max_size=60,
    )
)
def test_random_spo2_stream_invariants(stream: list[tuple[float, float | None]]) -> None:
    """Raises and clears alternate; a raise needs 10 s of breach; a clear needs >= 94."""
    state = al.initial()
    t = 0.0
    breach_since: float | None = None
    expect_active = False
    for step, value in stream:
        t += step
        state, emits = al.evaluate(state, {"spo2": value}, at(t), INF)
        kinds = [e.kind for e in emits]
        assert len(kinds) <= 1
        if value is None or value >= 92:
            breach_since = None
        elif breach_since is None:
            breach_since = t
        if kinds == [EventKind.ALERT_RAISED]:
            assert not expect_active
            assert breach_since is not None and at(t) - at(breach_since) >= timedelta(seconds=10)
            expect_active = True
            breach_since = None
        elif kinds == [EventKind.ALERT_CLEARED]:
            assert expect_active and value is not None and value >= 94
            expect_active = False
        elif not expect_active and breach_since is not None:
            assert at(t) - at(breach_since) < timedelta(seconds=10)
        elif expect_active:
            assert value is None or value < 94
        assert ("spo2_low" in state.active) == expect_active
