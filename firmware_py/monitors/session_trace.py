"""A realistic, deterministic ketamine-session vitals trace for the simulators.

Timeline (trace seconds): 5 min pre-check at baseline, 40 min infusion, 45 min recovery,
then steady baseline. During the infusion heart rate and blood pressure rise (ketamine's
sympathomimetic effect: about +18/min and +25/+14 mmHg, reached over the first ~15 min),
then settle back during recovery. An optional desaturation episode (2 min, 20 min into
the infusion) takes SpO2 down to the mid-80s with a lower respiration rate and a rise in
EtCO2. NIBP is a cuff: measured every 5 min and held in between.

`at(t)` is a pure function of t and the seed (noise is a sum of sines with seeded phases),
so the same seed gives the same trace whatever the sampling rate or speed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

PRE_CHECK_S = 300.0
INFUSION_S = 2400.0
RECOVERY_S = 2700.0
SESSION_S = PRE_CHECK_S + INFUSION_S + RECOVERY_S
NIBP_INTERVAL_S = 300.0


@dataclass(frozen=True, slots=True)
class TracePoint:
    """Vitals at one instant of the trace (all present; a simulator may blank them)."""

    t: float
    phase: str
    spo2: float
    pulse_rate: float
    heart_rate: float
    pi: float
    nibp_sys: float
    nibp_dia: float
    nibp_mean: float
    resp_rate: float
    etco2: float
    temp_c: float
    nibp_t: float = 0.0  # trace time of the cuff measurement the NIBP values come from


class KetamineTrace:
    """Vitals of one simulated patient over a ketamine session."""

    def __init__(
        self,
        seed: int = 0,
        *,
        desat: bool = False,
        desat_at_s: float = PRE_CHECK_S + 1200.0,
        desat_len_s: float = 120.0,
        hypertensive: bool = False,
    ) -> None:
        rng = random.Random(seed)
        self.desat = desat
        # A hypertensive response: systolic climbs past 180 mmHg during the infusion and
        # settles below it in recovery (the room's blood-pressure alert fires, then clears).
        self.bp_rise = (75.0, 30.0) if hypertensive else (25.0, 14.0)
        self.desat_at_s = desat_at_s
        self.desat_len_s = desat_len_s
        self.hr0 = rng.uniform(66, 80)
        self.sys0 = rng.uniform(110, 130)
        self.dia0 = rng.uniform(68, 80)
        self.spo20 = rng.uniform(97, 99)
        self.rr0 = rng.uniform(12, 16)
        self.etco20 = rng.uniform(35, 40)
        self.temp0 = rng.uniform(36.5, 37.0)
        self.pi0 = rng.uniform(2.0, 5.0)
        # (amplitude scale, period s, phase) per noise component
        self._waves = [
            (rng.uniform(0.3, 1.0), rng.uniform(7, 90), rng.uniform(0, 6.3)) for _ in range(3)
        ]

    def _noise(self, t: float, scale: float, salt: int) -> float:
        total = 0.0
        for i, (amp, period, phase) in enumerate(self._waves):
            stretched = period * (1 + 0.17 * salt)
            total += amp * math.sin(2 * math.pi * t / stretched + phase + i * salt)
        return scale * total / len(self._waves)

    @staticmethod
    def phase_at(t: float) -> str:
        if t < PRE_CHECK_S:
            return "pre_check"
        if t < PRE_CHECK_S + INFUSION_S:
            return "infusion"
        if t < SESSION_S:
            return "recovery"
        return "discharge_ready"

    @staticmethod
    def effect(t: float) -> float:
        """0 at baseline, rising to ~1 during the infusion, decaying in recovery."""
        if t < PRE_CHECK_S:
            return 0.0
        end = PRE_CHECK_S + INFUSION_S
        rise = 1.0 - math.exp(-(min(t, end) - PRE_CHECK_S) / 300.0)
        if t <= end:
            return rise
        return rise * math.exp(-(t - end) / 600.0)

    def _desat_depth(self, t: float) -> float:
        if not self.desat or not self.desat_at_s <= t < self.desat_at_s + self.desat_len_s:
            return 0.0
        return math.sin(math.pi * (t - self.desat_at_s) / self.desat_len_s)

    def _core(self, t: float) -> tuple[float, float, float]:
        e = self.effect(t)
        sys = self.sys0 + self.bp_rise[0] * e + self._noise(t, 3, 4)
        dia = self.dia0 + self.bp_rise[1] * e + self._noise(t, 2, 5)
        return e, sys, dia

    def at(self, t: float) -> TracePoint:
        e, _, _ = self._core(t)
        d = self._desat_depth(t)
        hr = self.hr0 + 18 * e + 8 * d + self._noise(t, 2.5, 1)
        cuff_t = math.floor(t / NIBP_INTERVAL_S) * NIBP_INTERVAL_S
        _, sys, dia = self._core(cuff_t)
        spo2 = min(100.0, self.spo20 - 0.5 * e - 12 * d + self._noise(t, 0.6, 2))
        return TracePoint(
            t=t,
            phase=self.phase_at(t),
            spo2=round(spo2),
            pulse_rate=round(hr + self._noise(t, 1.0, 3)),
            heart_rate=round(hr),
            pi=round(max(0.2, self.pi0 - 1.0 * e + self._noise(t, 0.3, 6)), 2),
            nibp_sys=round(sys),
            nibp_dia=round(dia),
            nibp_mean=round(dia + (sys - dia) / 3),
            resp_rate=round(max(4.0, self.rr0 + 1.5 * e - 6 * d + self._noise(t, 1.0, 7))),
            etco2=round(self.etco20 + 6 * d + self._noise(t, 1.0, 8)),
            temp_c=round(self.temp0 + 0.1 * e + self._noise(t, 0.05, 9), 1),
            nibp_t=cuff_t,
        )
