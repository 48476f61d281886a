"""The one place that builds and parses topic names.

Prefix `clinic/{site}/room/{room}/`. Every topic the platform uses is made here, so the
room, the logger, the board and the tests cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contract.messages import (
    CallMessage,
    Envelope,
    EventMessage,
    HealthMessage,
    StateMessage,
    VitalsMessage,
    is_ident,
)
from contract.staff import (
    CallReceipt,
    ClaimCommand,
    CleaningCommand,
    Command,
    DeliveryReport,
    PhaseCommand,
    PlaceTestCallCommand,
    SceneCommand,
    ShiftAssignments,
    SimButton,
)

ROOT = "clinic"


@dataclass(frozen=True)
class TopicSpec:
    """A room topic: its leaf, retain flag, QoS and payload model.

    `model` is None for `availability`, the one plain-text payload (`online` / `offline`,
    also the MQTT Will, so it cannot carry an envelope).
    """

    leaf: str
    retained: bool
    qos: int
    model: type[BaseModel] | None
    note: str = ""

    @property
    def payload(self) -> str:
        """How docs/CONTRACT.md names the payload."""
        if self.model is None:
            return "`online` / `offline` (plain text; also the Will)"
        return self.model.__name__ + (f" ({self.note})" if self.note else "")

    @property
    def schema_name(self) -> str:
        """File stem of the payload's JSON Schema (`cmd/phase` -> `cmd_phase`)."""
        return self.leaf.replace("/", "_")


# The one topic -> model table. Everything else (what the room publishes, the commands it
# takes, the schemas, docs/CONTRACT.md, the broker's ACL) is derived from it.
ROOM_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("availability", True, 1, None),
    TopicSpec("state", True, 1, StateMessage),
    TopicSpec("call", True, 1, CallMessage),
    TopicSpec("events", False, 1, EventMessage),
    TopicSpec("vitals", False, 1, VitalsMessage),
    TopicSpec("health", True, 1, HealthMessage),
    TopicSpec("cmd/phase", False, 1, PhaseCommand),
    TopicSpec("cmd/claim", False, 1, ClaimCommand),
    TopicSpec("cmd/scene", False, 1, SceneCommand),
    TopicSpec("cmd/cleaning", False, 1, CleaningCommand),
    TopicSpec("cmd/test_call", False, 1, PlaceTestCallCommand),
    TopicSpec("sim/button", False, 1, SimButton, "simulation only"),
    TopicSpec("receipt", False, 1, CallReceipt, "on `receipt/<sender>`: a call was seen"),
    TopicSpec("page", False, 1, DeliveryReport, "on `page/<notifier>`: one page attempt"),
)
# Leaves a central identity (a board, a notifier) writes under a room, each under its own name
# (`<leaf>/<sender>`, the ACL binds the sender to the certificate): never the room's own.
SENDER_LEAVES = frozenset({"receipt", "page"})
SPEC_BY_LEAF = {spec.leaf: spec for spec in ROOM_TOPICS}
SPEC_BY_MODEL = {spec.model: spec for spec in ROOM_TOPICS if spec.model is not None}

# Everything the room publishes with an envelope, by leaf.
ROOM_MESSAGES: dict[str, type[Envelope]] = {
    s.leaf: s.model for s in ROOM_TOPICS if s.model is not None and issubclass(s.model, Envelope)
}
# Staff commands, by name (the leaf after `cmd/`).
COMMANDS: dict[str, type[Command]] = {
    s.leaf.removeprefix("cmd/"): s.model
    for s in ROOM_TOPICS
    if s.model is not None and issubclass(s.model, Command)
}
# Central-side topics (prefix `clinic/{site}/`): the same table style, with `{name}` the
# publisher's name (its certificate is `<kind>-<name>`).
CENTRAL_TOPICS = (
    TopicSpec("assignments/{name}", True, 1, ShiftAssignments, "the board's, for the shift"),
)
# Every payload model, by schema name (`roomctl schema`).
ALL_PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    s.schema_name.replace("_{name}", ""): s.model
    for s in (*ROOM_TOPICS, *CENTRAL_TOPICS)
    if s.model is not None
}
RETAINED_LEAVES = frozenset(s.leaf for s in ROOM_TOPICS if s.retained)


def check_ident(kind: str, value: str) -> str:
    """Refuse a site or room id that could break the topic tree (`/`, `+`, `#`, ...)."""
    if not is_ident(value):
        raise ValueError(
            f"{kind} {value!r} must be lower-case letters, digits, '-' or '_' "
            "(1-63 characters, starting with a letter or digit)"
        )
    return value


def site_prefix(site: str) -> str:
    return f"{ROOT}/{check_ident('site', site)}"


def room_prefix(site: str, room: str) -> str:
    return f"{site_prefix(site)}/room/{check_ident('room', room)}"


def room_topic(site: str, room: str, leaf: str) -> str:
    if leaf not in SPEC_BY_LEAF:
        raise ValueError(f"unknown room topic {leaf!r}")
    return f"{room_prefix(site, room)}/{leaf}"


def availability(site: str, room: str) -> str:
    return room_topic(site, room, "availability")


def state(site: str, room: str) -> str:
    return room_topic(site, room, "state")


def call(site: str, room: str) -> str:
    return room_topic(site, room, "call")


def events(site: str, room: str) -> str:
    return room_topic(site, room, "events")


def vitals(site: str, room: str) -> str:
    return room_topic(site, room, "vitals")


def health(site: str, room: str) -> str:
    return room_topic(site, room, "health")


def cmd(site: str, room: str, name: str, sender: str) -> str:
    """`.../cmd/{name}/{sender}`: a staff command, under the name of the identity that sends it.

    The broker's ACL lets a staff certificate write only under its own name, so the room
    knows who sent a command from the topic, not from the payload (docs/CONTRACT.md).
    """
    check_ident("sender", sender)
    return f"{room_topic(site, room, f'cmd/{name}')}/{sender}"


def split_cmd(leaf: str) -> tuple[str, str | None] | None:
    """`cmd/phase/ana` -> ("phase", "ana"); `cmd/phase` (no sender) -> ("phase", None);
    None when the leaf is not a known command with an identifier as its sender."""
    parts = leaf.split("/")
    if len(parts) not in (2, 3) or parts[0] != "cmd" or parts[1] not in COMMANDS:
        return None
    if len(parts) == 2:
        return parts[1], None
    return (parts[1], parts[2]) if is_ident(parts[2]) else None


def cmd_filter(site: str, room: str) -> str:
    return f"{room_prefix(site, room)}/cmd/#"


def receipt(site: str, room: str, sender: str) -> str:
    """Where `sender` (a staff or notifier identity) says a call of the room reached it."""
    return f"{room_prefix(site, room)}/receipt/{check_ident('sender', sender)}"


def receipt_filter(site: str, room: str) -> str:
    return f"{room_prefix(site, room)}/receipt/+"


def split_receipt(leaf: str) -> str | None:
    """`receipt/board` -> "board"; None for anything else."""
    got = split_sender_leaf(leaf)
    return got[1] if got is not None and got[0] == "receipt" else None


def page(site: str, room: str, sender: str) -> str:
    """Where the notifier `sender` reports each attempt to page someone about a call of the
    room, and its result (issue 15; not retained; docs/NOTIFIER.md)."""
    return f"{room_prefix(site, room)}/page/{check_ident('notifier', sender)}"


def split_sender_leaf(leaf: str) -> tuple[str, str] | None:
    """`receipt/board` -> ("receipt", "board"), `page/main` -> ("page", "main"); None for
    anything else (one of SENDER_LEAVES and an identifier, nothing more)."""
    parts = leaf.split("/")
    if len(parts) == 2 and parts[0] in SENDER_LEAVES and is_ident(parts[1]):
        return parts[0], parts[1]
    return None


def sim_button(site: str, room: str) -> str:
    return room_topic(site, room, "sim/button")


def all_rooms_filter(site: str) -> str:
    """Everything every room of a site publishes (and the commands sent to them)."""
    return f"{site_prefix(site)}/room/+/#"


def logger_status(site: str, name: str | None = None) -> str:
    """A logger's status: `clinic/{site}/logger/status` for the site's one logger (certificate
    `logger`), `clinic/{site}/logger/{name}/status` for each of several (`logger-{name}`)."""
    if name is None:
        return f"{site_prefix(site)}/logger/status"
    return f"{site_prefix(site)}/logger/{check_ident('logger', name)}/status"


def logger_status_filter(site: str) -> str:
    """Every logger status of a site (the board shows each)."""
    return f"{site_prefix(site)}/logger/#"


def parse_logger_status(site: str, topic: str) -> str | None:
    """The logger a status topic names ('' for the unnamed one), or None if it is none."""
    if topic == logger_status(site):
        return ""
    prefix = f"{site_prefix(site)}/logger/"
    if topic.startswith(prefix) and topic.endswith("/status"):
        name = topic[len(prefix) : -len("/status")]
        if is_ident(name):
            return name
    return None


def assignments(site: str, name: str) -> str:
    """The rooms -> nurse assignments published (retained) by the staff identity `name`."""
    return f"{site_prefix(site)}/assignments/{check_ident('sender', name)}"


def all_assignments(site: str) -> str:
    return f"{site_prefix(site)}/assignments/+"


@dataclass(frozen=True)
class ParsedTopic:
    site: str
    room: str
    leaf: str
    # the sending identity of a command (`cmd/{name}/{sender}`), a receipt or a page report
    sender: str | None = None


def parse_room_topic(topic: str) -> ParsedTopic | None:
    """Split `clinic/{site}/room/{room}/{leaf}`; None for anything else."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != ROOT or parts[2] != "room":
        return None
    site, room, leaf = parts[1], parts[3], "/".join(parts[4:])
    if not is_ident(site) or not is_ident(room):
        return None
    command = split_cmd(leaf)
    if command is not None:
        return ParsedTopic(site, room, f"cmd/{command[0]}", command[1])
    sent = split_sender_leaf(leaf)
    if sent is not None:
        return ParsedTopic(site, room, sent[0], sent[1])
    if leaf not in SPEC_BY_LEAF:
        return None
    return ParsedTopic(site, room, leaf)
