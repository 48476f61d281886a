"""Site bridges to a group's central broker, and the central broker's ACL (issue 16).

How this works: each clinic keeps its own Mosquitto (rooms never depend on the WAN). A bridge
section appended to the site broker's config (`bridge_text`, template `bridge.conf.tmpl`)
connects it to the central broker over TLS with a `bridge-<site>` certificate issued by the
central PKI, with a persistent session (`cleansession false`), and carries:

    out  clinic/<site>/room/+/{availability,state,call,events,vitals,health}   QoS 1
    in   clinic/<site>/room/+/{cmd,receipt,page}/#                           QoS 1
    in   clinic/<site>/logger/#  (a central logger back online: the rooms resend)

(receipts, "a screen or a phone has this call", go to the room like commands do: from the
central boards and notifiers in; so do the notifier's page reports, for the site's logger
and board)

The two sets do not overlap, so nothing loops. While the WAN is down the site broker queues
the outgoing messages for the bridge like for any persistent session: up to
`max_queued_messages`, which `roomctl broker config --bridge-to` raises to a day of the site's
traffic (`day_queue`: rooms x messages per second x 86400, with a margin). Mosquitto 2.0.11 has
no per-bridge queue limit, so the limit is the broker's. The site broker saves its queue every
`autosave_interval`: a site broker crash during an outage may lose what it received since the
last save (as for the logger's session; docs/LOGGER.md).

At the centre, `central_acl_text` confines each `bridge-<site>` to its own site prefix (write
the room data leaves, read the commands), so a site cannot write into another site's topics;
loggers and staff of the centre serve every site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from broker.mosquitto.conf import BrokerSettings, write_config
from broker.mosquitto.pki import Identity, Pki
from contract import topics

# What comes in to the rooms from the centre (staff commands, delivery receipts); the rest
# of what rooms publish goes out.
INBOUND_LEAVES = ("cmd/#", "receipt/#", "page/#")
ROOM_DATA_LEAVES = tuple(
    spec.leaf
    for spec in topics.ROOM_TOPICS
    if not spec.leaf.startswith(("cmd/", "sim/")) and spec.leaf not in topics.SENDER_LEAVES
)
# What one room publishes per second at most, on average: vitals at 1 Hz plus events, state,
# call and health changes (a busy room: ~0.2/s more).
ROOM_MESSAGES_PER_S = 1.2
DAY_S = 86_400


def day_queue(rooms: int, per_room_per_s: float = ROOM_MESSAGES_PER_S, margin: float = 1.25) -> int:
    """Messages the site broker must be able to queue to hold a day of the site's traffic."""
    if rooms < 1:
        raise ValueError("bridge rooms must be at least 1")
    return math.ceil(rooms * per_room_per_s * DAY_S * margin)


@dataclass(frozen=True)
class BridgeSettings:
    """A site broker's bridge to the central broker."""

    site: str
    central_host: str
    central_port: int
    ca: Path  # the central CA (verifies the central broker's certificate)
    cert: Path  # bridge-<site>, issued by the central PKI
    key: Path
    rooms: int = 50
    keepalive_s: int = 30


def bridge_text(b: BridgeSettings) -> str:
    """The bridge section of the site broker's mosquitto.conf."""
    topics.check_ident("site", b.site)
    base = topics.site_prefix(b.site)
    out = "\n".join(f"topic {base}/room/+/{leaf} out 1" for leaf in ROOM_DATA_LEAVES)
    template = resources.files("broker.mosquitto").joinpath("templates/bridge.conf.tmpl")
    return template.read_text().format(
        site=b.site,
        host=b.central_host,
        port=b.central_port,
        client_id=Identity("bridge", b.site).cn,
        cafile=Path(b.ca).resolve(),
        certfile=Path(b.cert).resolve(),
        keyfile=Path(b.key).resolve(),
        keepalive=b.keepalive_s,
        queue=day_queue(b.rooms),
        rooms=b.rooms,
        out_topics=out,
        in_topic="\n".join(
            [f"topic {base}/room/+/{leaf} in 1" for leaf in INBOUND_LEAVES]
            + [f"topic {base}/logger/# in 1"]  # the central loggers' status: rooms resend
        ),
    )


def central_acl_text(identities: list[Identity]) -> str:
    """The central broker's ACL: one block per identity of the central PKI.

    bridge-<site>   writes clinic/<site>/room/+/<data leaf>   reads clinic/<site>/room/+/cmd/#,
                                                                    .../room/+/receipt/#,
                                                                    .../room/+/page/#
    logger[-<n>]    reads  clinic/#                           writes clinic/+/logger[/<n>]/status
    staff-<name>    reads  clinic/#                           writes clinic/+/room/+/cmd/+/<name>,
                                                                 .../receipt/<name>, assignments
    notifier-<n>    reads  clinic/#                           writes clinic/+/room/+/receipt/<n>,
                                                                    .../room/+/page/<n>
    Nothing before the first `user` line: unknown and anonymous clients get nothing.
    """
    lines = [
        "# roomctl central ACL: generated from the central PKI (roomctl broker config --central).",
        "# Each site bridge writes only its own site's room data and reads only its commands.",
        "",
    ]
    for ident in identities:
        lines.append(f"user {ident.cn}")
        if ident.kind == "bridge":
            assert ident.name is not None
            base = topics.site_prefix(ident.name)
            lines += [f"topic write {base}/room/+/{leaf}" for leaf in ROOM_DATA_LEAVES]
            lines += [f"topic read {base}/room/+/{leaf}" for leaf in INBOUND_LEAVES]
            lines.append(f"topic read {base}/logger/#")
        elif ident.kind == "logger":
            lines.append(f"topic read {topics.ROOT}/#")
            status = "status" if ident.name is None else f"{ident.name}/status"
            lines.append(f"topic write {topics.ROOT}/+/logger/{status}")
        elif ident.kind == "staff":
            lines.append(f"topic read {topics.ROOT}/#")
            # only under its own name: the room takes the sender from the topic
            lines.append(f"topic write {topics.ROOT}/+/room/+/cmd/+/{ident.name}")
            lines.append(f"topic write {topics.ROOT}/+/room/+/receipt/{ident.name}")
            lines.append(f"topic write {topics.ROOT}/+/assignments/{ident.name}")
        elif ident.kind == "notifier":
            lines.append(f"topic read {topics.ROOT}/#")
            lines.append(f"topic write {topics.ROOT}/+/room/+/receipt/{ident.name}")
            lines.append(f"topic write {topics.ROOT}/+/room/+/page/{ident.name}")
        lines.append("")
    return "\n".join(lines)


def write_bridged_config(
    settings: BrokerSettings, bridge: BridgeSettings, out: Path, acl_out: Path | None = None
) -> tuple[Path, Path]:
    """The site broker's config (as `write_config`) with the bridge appended, and its queue
    raised to hold a day of the site's traffic."""
    if bridge.site != settings.site:
        raise ValueError(f"bridge site {bridge.site!r} is not the broker's {settings.site!r}")
    queue = max(settings.max_queued_messages, day_queue(bridge.rooms))
    conf, acl = write_config(replace(settings, max_queued_messages=queue), out, acl_out)
    with conf.open("a") as fh:
        fh.write(bridge_text(bridge))
    return conf, acl


def write_central_config(
    settings: BrokerSettings, out: Path, acl_out: Path | None = None
) -> tuple[Path, Path]:
    """The central broker's config (as `write_config`; its "site" is the central PKI's name)
    with the central ACL (`central_acl_text`) in place of a site's."""
    conf, acl = write_config(settings, out, acl_out)
    acl.write_text(central_acl_text(Pki(settings.pki_dir).inventory()))
    return conf, acl
