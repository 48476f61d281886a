"""Lighting core: scenes, fades (incl. retargeting mid-way), dome precedence, status codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.messages import ActiveAlert, CallPriority, CallStatus, CallType, Phase
from controller.core import dome
from controller.core import lighting as li
from controller.core.call_lifecycle import Call
from controller.core.call_types import default_table

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
RED: li.RGB = (1.0, 0.0, 0.0)
BLUE: li.RGB = (0.0, 0.0, 1.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def approx(color: li.RGB) -> object:
    return pytest.approx(color, abs=1e-9)


# -- scenes ----------------------------------------------------------------------------


def test_required_scenes_exist_and_are_valid() -> None:
    for name in ("off", "clean", "calm", "recovery", "discharge", "idle"):
        scene = li.DEFAULT_SCENES[name]
        assert scene.name == name
        assert all(0.0 <= c <= 1.0 for c in scene.color)
        assert scene.fade_s >= 0
    assert li.DEFAULT_SCENES["off"].color == (0, 0, 0)
    assert li.DEFAULT_SCENES["recovery"].fade_s >= 300
    assert set(li.DEFAULT_PHASE_SCENES) == set(Phase)
    assert all(name in li.DEFAULT_SCENES for name in li.DEFAULT_PHASE_SCENES.values())


def test_calm_is_dim_and_warm_clean_is_bright() -> None:
    calm = li.DEFAULT_SCENES["calm"].color
    clean = li.DEFAULT_SCENES["clean"].color
    assert sum(calm) < sum(clean) / 3
    assert calm[0] > calm[2]  # warm: more red than blue


@pytest.mark.parametrize(
    ("phase", "name"),
    [
        (Phase.IDLE, "idle"),
        (Phase.PRE_CHECK, "clean"),
        (Phase.INFUSION, "calm"),
        (Phase.RECOVERY, "recovery"),
        (Phase.DISCHARGE_READY, "discharge"),
    ],
)
def test_scene_for_phase(phase: Phase, name: str) -> None:
    assert li.scene_for(phase, None).name == name


def test_override_wins_and_unknown_override_falls_back() -> None:
    assert li.scene_for(Phase.INFUSION, "clean").name == "clean"
    assert li.scene_for(Phase.INFUSION, "disco").name == "calm"


def test_check_scene() -> None:
    assert li.check_scene("calm") is None
    error = li.check_scene("disco")
    assert error is not None and "disco" in error and "calm" in error


def test_broken_phase_table_gives_off() -> None:
    assert li.scene_for(Phase.INFUSION, None, {}, li.DEFAULT_SCENES).name == "off"
    assert li.scene_for(Phase.INFUSION, None, {}, {}).color == (0, 0, 0)


# -- fades -----------------------------------------------------------------------------


def test_first_fade_starts_from_black() -> None:
    fade = li.fade_to(None, RED, T0, 10)
    assert fade.start == (0, 0, 0)
    assert li.color_at(fade, T0) == (0, 0, 0)
    assert li.color_at(fade, at(5)) == approx((0.5, 0, 0))  # smoothstep(0.5) = 0.5
    assert li.color_at(fade, at(10)) == RED
    assert li.color_at(fade, at(1000)) == RED


def test_fade_is_eased_not_linear() -> None:
    fade = li.fade_to(None, RED, T0, 10)
    assert li.color_at(fade, at(1))[0] == pytest.approx(0.028)  # 3*0.01 - 2*0.001
    assert li.color_at(fade, at(9))[0] == pytest.approx(0.972)


def test_fade_done() -> None:
    fade = li.fade_to(None, RED, T0, 10)
    assert not li.fade_done(fade, at(9.999))
    assert li.fade_done(fade, at(10))


def test_retarget_mid_fade_starts_from_current_colour() -> None:
    first = li.fade_to(None, RED, T0, 10)
    mid = li.color_at(first, at(5))
    second = li.fade_to(first, BLUE, at(5), 20)
    assert second.start == mid
    assert second.started_at == at(5)
    assert li.color_at(second, at(5)) == mid  # no jump
    assert li.color_at(second, at(15)) == approx((0.25, 0, 0.5))
    assert li.color_at(second, at(25)) == BLUE


def test_clock_stepping_back_shows_start() -> None:
    fade = li.fade_to(li.fade_to(None, RED, T0, 0), BLUE, at(10), 10)
    assert li.color_at(fade, at(0)) == RED


@pytest.mark.parametrize("duration", [0.0, -1.0, float("nan"), float("inf")])
def test_degenerate_durations_are_immediate(duration: float) -> None:
    fade = li.fade_to(None, BLUE, T0, duration)
    assert li.color_at(fade, T0) == BLUE
    assert li.fade_done(fade, T0)


def test_target_is_clamped() -> None:
    fade = li.fade_to(None, (2.0, -1.0, float("nan")), T0, 0)
    assert fade.target == (1.0, 0.0, 0.0)


unit = st.floats(min_value=0, max_value=1)
wild = st.floats(allow_nan=True, allow_infinity=True)
colors = st.tuples(wild, wild, wild)


@given(
    st.lists(
        st.tuples(colors, st.floats(min_value=0, max_value=100), wild),
        min_size=1,
        max_size=8,
    ),
    st.floats(min_value=-100, max_value=1000),
)
def test_any_fade_chain_stays_in_range(
    steps: list[tuple[li.RGB, float, float]], probe: float
) -> None:
    fade: li.Fade | None = None
    now = T0
    for target, advance, duration in steps:
        now += timedelta(seconds=advance)
        before = li.color_at(fade, now) if fade is not None else (0.0, 0.0, 0.0)
        fade = li.fade_to(fade, target, now, duration)
        assert li.color_at(fade, now) == before or li.fade_done(fade, now)
        for color in (li.color_at(fade, now), li.color_at(fade, now + timedelta(seconds=probe))):
            assert all(0.0 <= c <= 1.0 for c in color)


@given(st.tuples(unit, unit, unit), st.tuples(unit, unit, unit), st.floats(0, 1))
def test_fade_stays_between_endpoints(a: li.RGB, b: li.RGB, frac: float) -> None:
    fade = li.Fade(a, b, T0, 100)
    color = li.color_at(fade, at(100 * frac))
    for c, lo, hi in zip(color, a, b, strict=True):
        assert min(lo, hi) - 1e-12 <= c <= max(lo, hi) + 1e-12


# -- dome light ------------------------------------------------------------------------

P, C, E, IDL = CallStatus.PLACED, CallStatus.CLAIMED, CallStatus.ESCALATED, CallStatus.IDLE
N, INF, EM = CallPriority.NORMAL, CallPriority.INFUSION, CallPriority.EMERGENCY


@pytest.mark.parametrize(
    ("status", "priority", "alert", "monitor", "expected"),
    [
        (IDL, None, False, False, li.DomePattern("off")),
        (IDL, None, False, True, li.DomePattern("blink", 0.1, 1.9)),
        (IDL, None, True, False, li.DomePattern("blink", 0.5, 0.5)),
        (IDL, EM, False, False, li.DomePattern("off")),  # stale priority on idle ignored
        (P, N, False, False, li.DomePattern("steady")),
        (P, N, False, True, li.DomePattern("steady")),
        (C, N, False, False, li.DomePattern("steady")),
        (P, INF, False, False, li.DomePattern("blink", 1.0, 1.0)),
        (C, INF, False, False, li.DomePattern("steady")),
        (P, N, True, False, li.DomePattern("blink", 0.5, 0.5)),
        (P, INF, True, False, li.DomePattern("blink", 0.5, 0.5)),
        (E, N, False, False, li.DomePattern("blink", 0.25, 0.25)),
        (E, INF, True, False, li.DomePattern("blink", 0.25, 0.25)),
        (P, EM, False, False, li.DomePattern("blink", 0.25, 0.25)),
        (C, EM, True, True, li.DomePattern("blink", 0.25, 0.25)),
        (E, EM, True, False, li.DomePattern("blink", 0.25, 0.25)),
    ],
)
def test_dome_precedence(
    status: CallStatus,
    priority: CallPriority | None,
    alert: bool,
    monitor: bool,
    expected: li.DomePattern,
) -> None:
    """What a single-colour dome shows (the top layer) for one call, an alert, trouble."""
    calls = []
    if status is not IDL and priority is not None:
        kind = CallType.EMERGENCY if priority is EM else CallType.NORMAL
        claimed = status is C
        calls.append(
            Call(
                "c1",
                kind,
                priority,
                status,
                T0,
                claimed_by="a" if claimed else None,
                claimed_at=T0 if claimed else None,
            )
        )
    alerts = [ActiveAlert(name="x", field="spo2", threshold=1.0, since=T0)] if alert else []
    layers = dome.layers(calls, default_table(), alerts, monitor, False, False)
    top = dome.top(layers)
    assert li.DomePattern(top.kind, top.on_s, top.off_s) == expected  # type: ignore[arg-type]


# -- status LED ------------------------------------------------------------------------


def test_status_ok() -> None:
    assert li.status_code(True, True, True, 0.0, True) is li.StatusCode.OK


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"hardware_ok": False, "broker_connected": False}, li.StatusCode.HARDWARE_FAULT),
        ({"broker_connected": False, "monitor_ok": False}, li.StatusCode.BROKER_UNREACHABLE),
        ({"monitor_ok": False, "outbox_fill": 0.9}, li.StatusCode.MONITOR_SILENT),
        ({"outbox_fill": 0.8, "clock_synced": False}, li.StatusCode.OUTBOX_FILLING),
        ({"outbox_fill": float("nan")}, li.StatusCode.OUTBOX_FILLING),
        ({"outbox_fill": 0.79, "clock_synced": False}, li.StatusCode.CLOCK_UNSYNCED),
    ],
)
def test_status_code_severity(kwargs: dict[str, object], code: li.StatusCode) -> None:
    args: dict[str, object] = {
        "broker_connected": True,
        "monitor_ok": True,
        "clock_synced": True,
        "outbox_fill": 0.0,
        "hardware_ok": True,
    }
    args.update(kwargs)
    assert li.status_code(**args) is code  # type: ignore[arg-type]


def test_every_code_has_text() -> None:
    assert set(li.STATUS_TEXT) == set(li.StatusCode)
    assert li.STATUS_TEXT[li.StatusCode.OK] == "ok"


def test_heartbeat_sequence() -> None:
    assert li.blink_sequence(li.StatusCode.OK) == ((True, 1.0), (False, 2.0))


@pytest.mark.parametrize("code", [c for c in li.StatusCode if c != li.StatusCode.OK])
def test_code_sequence_counts_blinks(code: li.StatusCode) -> None:
    seq = li.blink_sequence(code)
    assert sum(1 for on, _ in seq if on) == int(code)
    assert seq[: 2 * int(code)] == ((True, 0.25), (False, 0.35)) * int(code)
    assert seq[-1] == (False, 1.5)
    assert all(seconds > 0 for _, seconds in seq)
