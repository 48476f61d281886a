"""Simulator trace options used by the demo: a hypertensive patient crosses the BP threshold."""

from firmware_py.monitors.session_trace import KetamineTrace


def test_hypertensive_trace_crosses_180_in_infusion_and_settles() -> None:
    for seed in range(5):
        trace = KetamineTrace(seed, hypertensive=True)
        infusion = [trace.at(t) for t in range(0, 5400, 15) if trace.at(t).phase == "infusion"]
        assert max(p.nibp_sys for p in infusion) > 185
        assert trace.at(5399).nibp_sys < 170  # late recovery: back under the threshold
        plain = KetamineTrace(seed)
        assert max(plain.at(t).nibp_sys for t in range(0, 5400, 15)) < 175
