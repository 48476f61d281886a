"""Staff commands on the pure room core: validation, refusals, expiry, retained commands,
the request id in the room's answer, sim input."""

from __future__ import annotations

import json

from contract import topics
from contract.messages import (
    CallMessage,
    StateMessage,
)
from controller.core.io_types import (
    Button,
    ButtonPressed,
    LinkDown,
    LinkUp,
    MessageReceived,
    ResendRecent,
    SimulateButton,
)
from tests.support.room_core import (
    ROOM,
    SITE,
    Room,
    bodies,
    config,
    events,
)


def test_bad_commands_are_refused_and_the_room_keeps_working() -> None:
    room = Room()
    out = room.command("phase", b"{not json")
    assert "bad phase command" in events(out, "command_refused")[0]["reason"]
    out = room.command("phase", {"phase": "infusion", "by": "nurse.kim"})
    refused = events(out, "phase_refused")[0]["reason"]
    assert "idle" in refused and "pre_check" in refused
    assert not bodies(out, StateMessage)
    out = room.command("claim", {"call_id": "nope", "by": "nurse.kim"})
    assert events(out, "command_refused")[0]["by"] == "nurse.kim"
    out = room.command("scene", {"scene": "disco", "by": "nurse.kim"})
    assert "disco" in events(out, "command_refused")[0]["reason"]
    reboot = topics.room_prefix(SITE, ROOM) + "/cmd/reboot"
    out = room.feed(MessageReceived(reboot, b'{"by": "nurse.kim"}'))
    assert "unknown command topic" in events(out, "command_refused")[0]["reason"]
    out = room.feed(MessageReceived("clinic/test/room/999/cmd/phase", b"{}"))
    assert events(out, "command_refused")  # another room's topic is never acted on
    # a good command still acts
    room.feed(ButtonPressed(Button.CALL))
    out = room.command("claim", {"call_id": f"{ROOM}-call1", "by": "nurse.kim"})
    claimed = bodies(out, CallMessage)[0]
    assert claimed["status"] == "claimed" and claimed["claimed_by"] == "nurse.kim"
    out = room.command("phase", {"phase": "pre_check", "by": "nurse.kim"})
    assert events(out, "phase_changed") and bodies(out, StateMessage)[0]["phase"] == "pre_check"


def test_scene_override_and_hand_back() -> None:
    room = Room()
    out = room.command("scene", {"scene": "clean", "by": "nurse.kim"})
    assert bodies(out, StateMessage)[0]["scene_override"] is True
    assert events(out, "scene_changed")[0]["detail"]["override"] is True
    out = room.command("scene", {"scene": None, "by": "nurse.kim"})
    assert bodies(out, StateMessage)[0]["scene_override"] is False


def test_sim_button_only_in_a_simulated_room() -> None:
    press = json.dumps({"button": "call", "action": "press"}).encode()
    topic = topics.sim_button(SITE, ROOM)
    sim = Room()
    assert SimulateButton("call", "press") in sim.feed(MessageReceived(topic, press))
    real = Room(config(simulate=False))
    assert real.feed(MessageReceived(topic, press)) == []
    out = sim.feed(MessageReceived(topic, b'{"button": "fire"}'))
    assert "bad sim/button payload" in events(out, "command_refused")[0]["reason"]


def test_a_command_older_than_the_max_age_is_refused_as_expired() -> None:
    room = Room(config(commands={"max_age_s": 30}))
    out = room.command("phase", {"phase": "pre_check", "by": "nurse.kim"}, age_s=40)
    refused = events(out, "command_refused")[0]
    assert (
        refused["reason"].startswith("expired: issued 40.0 s ago") and refused["by"] == "nurse.kim"
    )
    assert room.core.session.phase == "idle" and not bodies(out, StateMessage)
    out = room.command("phase", {"phase": "pre_check", "by": "nurse.kim"}, age_s=-45)
    assert "in the future" in events(out, "command_refused")[0]["reason"]
    out = room.command("phase", {"phase": "pre_check", "by": "nurse.kim"}, age_s=29)
    assert events(out, "phase_changed")  # within the max age it acts


def test_a_command_without_issued_at_or_retained_is_refused() -> None:
    room = Room()
    bare = json.dumps({"phase": "pre_check", "by": "nurse.kim"}).encode()
    out = room.command("phase", bare)
    assert "issued_at" in events(out, "command_refused")[0]["reason"]
    out = room.command("phase", {"phase": "pre_check", "by": "nurse.kim"}, retained=True)
    assert "retained" in events(out, "command_refused")[0]["reason"]
    assert room.core.session.phase == "idle"


def test_the_room_answers_a_command_with_its_request_id() -> None:
    room = Room()
    out = room.command("phase", {"phase": "pre_check", "by": "nurse.kim", "request_id": "r1"})
    assert events(out, "phase_changed")[0]["detail"]["request_id"] == "r1"
    out = room.command("phase", {"phase": "discharge_ready", "by": "nurse.kim", "request_id": "r2"})
    assert events(out, "phase_refused")[0]["detail"]["request_id"] == "r2"
    out = room.command("scene", {"scene": "x", "by": "nurse.kim", "request_id": "r3"}, age_s=99)
    assert events(out, "command_refused")[0]["detail"]["request_id"] == "r3"


def test_by_is_the_sender_the_broker_authenticated_unless_a_delegate_sent_it() -> None:
    room = Room()
    # a staff certificate (staff-ana) may act only as herself
    out = room.command("phase", {"phase": "pre_check", "by": "kim"}, sender="ana")
    (refused,) = events(out, "command_refused")
    assert "'kim' is not the sender 'ana'" in refused["reason"]
    assert refused["by"] == "ana"  # the refusal names who really sent it
    assert room.core.session.phase == "idle"
    out = room.command("phase", {"phase": "pre_check", "by": "ana"}, sender="ana")
    assert events(out, "phase_changed")[0]["by"] == "ana"
    # the board (a delegate) logs nurses in itself: its commands carry the nurse's name
    out = room.command("phase", {"phase": "infusion", "by": "nina"}, sender="board")
    assert events(out, "phase_changed")[0]["by"] == "nina"
    # a room configured with no delegates believes no one but the sender
    strict = Room(config(commands={"delegates": []}))
    out = strict.command("phase", {"phase": "pre_check", "by": "nina"}, sender="board")
    assert "no one may act for others" in events(out, "command_refused")[0]["reason"]


def test_a_command_topic_without_a_sender_is_refused() -> None:
    room = Room()
    body = json.dumps({"phase": "pre_check", "by": "ana", "issued_at": "2026-01-01T00:00:00Z"})
    out = room.feed(MessageReceived(topics.room_prefix(SITE, ROOM) + "/cmd/phase", body.encode()))
    assert "names no sender" in events(out, "command_refused")[0]["reason"]
    assert room.core.session.phase == "idle"


def test_a_logger_back_online_gets_the_replay_window_again() -> None:
    """A broker killed before it saved the logger's session: what rooms sent after it
    restarted and before the logger resubscribed reached no one. The logger's `online`
    (published live) makes every room resend its replay window; the retained status handed
    over at subscribe time does not (the room resent on connect already)."""
    room = Room()
    room.feed(LinkUp(session_present=False))
    status = topics.logger_status(SITE)
    out = room.feed(MessageReceived(status, b"online", retained=True))
    assert not [a for a in out if isinstance(a, ResendRecent)]
    out = room.feed(MessageReceived(status, b"online"))
    assert [a for a in out if isinstance(a, ResendRecent)] == [ResendRecent()]
    out = room.feed(MessageReceived(topics.logger_status(SITE, "b"), b"offline"))
    assert not [a for a in out if isinstance(a, ResendRecent)] and not events(out)
    room.feed(LinkDown("gone"))
    out = room.feed(MessageReceived(status, b"online"))
    assert not [a for a in out if isinstance(a, ResendRecent)]  # nothing to resend over
