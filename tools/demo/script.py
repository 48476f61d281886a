"""The demo's scripted clinic day, in script seconds (divided by `--speed` when played).

Every room runs one session through every phase, staggered. Along the way: a call during
infusion (claimed by the scripted nurse, cancelled in the room), an emergency, a call
nobody claims in time (it escalates), a patient whose blood pressure crosses the alert
threshold, a room Pi that is killed and comes back, a monitor unplugged and plugged back.
And the nurse call of issue 14: a call answered by staff presence, a staff assist claimed
and cleared, a bath (restroom) call answered in the room, a call cord pulled out of its jack
and put back, a room cleaned after its session (a press during cleaning is ignored), and
the first room's monitor raising its own alarm when the probe slips off. And issue 15: the
board's screens for the escalation room are closed when its patient calls, so nobody
confirms the call: the room escalates locally (its dome strobes), until a screen opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SITE = "demo"
NURSE = "ana"  # the scripted nurse: her commands carry by="ana" (staff certificate staff-ana)

# (protocol, room transport) per room: every protocol and transport present.
MONITORS: tuple[tuple[str, str], ...] = (
    ("masimo", "serial"),
    ("nonin-df2", "tcp-client"),
    ("hl7", "mllp-listen"),
    ("nonin-df7", "serial"),
    ("masimo", "tcp-client"),
    ("hl7", "mllp-listen"),
)
# Session shape in script seconds: pre_check, infusion, recovery, discharge_ready.
PRE_CHECK_S, INFUSION_S, RECOVERY_S, DISCHARGE_S = 10.0, 60.0, 45.0, 6.0
SESSION_S = PRE_CHECK_S + INFUSION_S + RECOVERY_S + DISCHARGE_S
STAGGER_S = 6.0
CLEANING_S = 8.0  # the scripted cleaning mode, script seconds
# The monitor trace is a 90-minute ketamine session; played so one session fits it.
TRACE_SPEED = 90 * 60 / (PRE_CHECK_S + INFUSION_S + RECOVERY_S)

# Roles in the story, by room index.
CALL_ROOM, PI_KILLED_ROOM, EMERGENCY_ROOM, UNPLUG_ROOM, ESCALATION_ROOM, BP_ROOM = range(6)
# BP_ROOM must have a monitor that measures blood pressure (HL7): Masimo and Nonin do not.


@dataclass(frozen=True)
class Step:
    at: float  # script seconds from the start
    room: int  # room index
    what: str  # phase:<p> | press:<button> | release:<button> | claim[:<call type>]
    #            | cord:open | cord:close | cleaning:<script seconds> | kill-pi | start-pi
    #            | unplug-monitor | plug-monitor | screens:closed | screens:open
    note: str = ""


def session_start(room: int) -> float:
    return 2.0 + STAGGER_S * room


def clinic_day(n_rooms: int) -> list[Step]:
    steps: list[Step] = []
    for i in range(n_rooms):
        s = session_start(i)
        t = s
        for phase, length in (
            ("pre_check", PRE_CHECK_S),
            ("infusion", INFUSION_S),
            ("recovery", RECOVERY_S),
            ("discharge_ready", DISCHARGE_S),
        ):
            steps.append(Step(t, i, f"phase:{phase}"))
            t += length
        steps.append(Step(t, i, "phase:idle", "session complete"))

    def at(room: int, offset: float, what: str, note: str = "") -> None:
        if room < n_rooms:
            steps.append(Step(session_start(room) + offset, room, what, note))

    def press(room: int, offset: float, button: str, note: str = "") -> None:
        at(room, offset, f"press:{button}", note)
        at(room, offset + 0.2, f"release:{button}")

    infusion = PRE_CHECK_S
    recovery = PRE_CHECK_S + INFUSION_S
    at(CALL_ROOM, infusion + 15, "press:call", "the patient presses call during infusion")
    at(CALL_ROOM, infusion + 15.3, "release:call")
    at(CALL_ROOM, infusion + 22, "claim", "the nurse claims the call")
    at(CALL_ROOM, infusion + 30, "press:cancel", "the nurse cancels the call at the bedside")
    at(CALL_ROOM, infusion + 30.2, "release:cancel")
    at(EMERGENCY_ROOM, infusion + 35, "press:emergency", "EMERGENCY input")
    at(EMERGENCY_ROOM, infusion + 35.2, "release:emergency")
    at(EMERGENCY_ROOM, infusion + 38, "claim", "the nurse claims the emergency")
    at(EMERGENCY_ROOM, infusion + 44, "press:cancel", "the emergency is cleared in the room")
    at(EMERGENCY_ROOM, infusion + 44.2, "release:cancel")
    at(ESCALATION_ROOM, recovery + 4, "screens:closed",
       "every board screen is closed: no one will confirm this room's next call")  # fmt: skip
    at(ESCALATION_ROOM, recovery + 5, "press:call", "a patient calls during recovery")
    at(ESCALATION_ROOM, recovery + 16, "screens:open",
       "a screen opens again: the room's blind-central escalation ends")  # fmt: skip
    at(ESCALATION_ROOM, recovery + 5.3, "release:call")
    at(ESCALATION_ROOM, recovery + 25, "claim", "the escalated call is claimed at last")
    at(ESCALATION_ROOM, recovery + 30, "press:cancel")
    at(ESCALATION_ROOM, recovery + 30.2, "release:cancel")
    # issue 14: presence, assist, bath, cord out and back, cleaning (the monitor alarm comes
    # from CALL_ROOM's simulated Masimo: its probe slips off, `--fault sensor-off`)
    press(CALL_ROOM, recovery + 8, "call", "the patient calls again")
    press(CALL_ROOM, recovery + 12, "presence", "the nurse walks in: presence answers the call")
    press(CALL_ROOM, recovery + 20, "presence", "the nurse leaves (presence ends)")
    press(EMERGENCY_ROOM, recovery + 5, "assist", "STAFF ASSIST: the nurse calls a colleague")
    at(EMERGENCY_ROOM, recovery + 8, "claim:assist", "a colleague claims the assist call")
    press(EMERGENCY_ROOM, recovery + 14, "cancel", "the assist is cleared in the room")
    press(UNPLUG_ROOM, recovery + 5, "bath", "BATH CALL: the patient pulls the restroom cord")
    press(UNPLUG_ROOM, recovery + 9, "presence", "staff presence answers the bath call")
    press(UNPLUG_ROOM, recovery + 15, "presence")
    at(PI_KILLED_ROOM, recovery + 10, "cord:open", "CORD OUT: the call cord is pulled out")
    at(PI_KILLED_ROOM, recovery + 18, "cord:close", "the call cord is plugged back")
    end = SESSION_S
    at(ESCALATION_ROOM, end + 1, f"cleaning:{CLEANING_S:g}", "CLEANING: the room is wiped down")
    press(ESCALATION_ROOM, end + 3, "call", "a press while cleaning is ignored")
    at(PI_KILLED_ROOM, infusion + 25, "kill-pi", "the room Pi loses power (SIGKILL)")
    at(PI_KILLED_ROOM, infusion + 31, "start-pi", "the room Pi boots again")
    at(UNPLUG_ROOM, infusion + 20, "unplug-monitor", "the monitor cable is pulled")
    at(UNPLUG_ROOM, infusion + 30, "plug-monitor", "the monitor cable is plugged back")
    return sorted(steps, key=lambda s: s.at)


def room_config_text(
    room: str,
    state_dir: Path,
    broker_url: str,
    tls: dict[str, Path],
    monitor: dict[str, str],
    speed: float,
) -> str:
    """A room config whose timings fit the scripted session at this speed."""

    def minutes(script_seconds: float) -> str:
        return f"{script_seconds / speed / 60:.4f}"

    lines = [
        f'site = "{SITE}"',
        f'room = "{room}"',
        f'state_dir = "{state_dir}"',
        "simulate = true",
        "",
        "[broker]",
        f'url = "{broker_url}"',
        *(f'{key} = "{path}"' for key, path in tls.items()),
        "reconnect_min_s = 0.5",
        "reconnect_max_s = 2",
        "",
        "[timing]",
        f"planned_pre_check_min = {minutes(PRE_CHECK_S)}",
        f"planned_infusion_min = {minutes(INFUSION_S - 4)}",  # overruns a little: a reminder
        f"planned_recovery_min = {minutes(RECOVERY_S - 2)}",
        f"min_recovery_min = {minutes(RECOVERY_S - 8)}",
        f"reminder_every_min = {minutes(10)}",
        f"escalate_normal_s = {12 / speed:.2f}",
        f"escalate_infusion_s = {10 / speed:.2f}",
        f"escalate_emergency_s = {5 / speed:.2f}",
        # no screen or phone confirms a call in 6 script seconds: the room escalates it
        f"central_receipt_s = {6 / speed:.2f}",
        "health_every_s = 5",
        "",
        "[cord]",
        f"debounce_s = {1 / speed:.2f}",  # a cord out shows within a script second
        "",
        "[monitor]",
        *(f'{k} = "{v}"' for k, v in monitor.items()),
        "silence_s = 3",
        "",
    ]
    return "\n".join(lines)
