"""Mosquitto 2 configuration and ACL for a clinic, generated from the PKI inventory.

How this works: the TLS listener requires a client certificate from the clinic CA and takes
the certificate's CN as the MQTT username (`use_identity_as_username`). Mosquitto's ACL
`pattern` can only substitute the whole username (`%u`), and a CN such as `room-101` cannot
become the topic segment `101`, so the ACL has one explicit `user` block per identity, written
from the certificates in the PKI's `clients/` folder:

    user room-101        writes clinic/S/room/101/{availability,state,call,events,vitals,health}
                         reads  clinic/S/room/101/cmd/#, clinic/S/room/101/receipt/+,
                                clinic/S/logger/#
    user staff-<name>    reads  clinic/S/#            writes clinic/S/room/+/cmd/+/<name>,
                                                      clinic/S/assignments/<name>
    user logger          reads  clinic/S/#            writes clinic/S/logger/status
    user logger-<n>      reads  clinic/S/#            writes clinic/S/logger/<n>/status
    user notifier-<n>    reads  clinic/S/#            writes clinic/S/room/+/receipt/<n>,
                                                      clinic/S/room/+/page/<n>

There are no lines before the first `user`, so a client without a username gets nothing, and an
identity without a block (a certificate issued after the config was written, or removed from
`clients/`) gets nothing either: fail closed. Adding a room = issue, regenerate, SIGHUP.
Taking a certificate back = `roomctl pki revoke` (the CRL, `crlfile`: refused at the handshake).

The TLS listener also forces the client id to the username (`use_username_as_clientid`), so a
certificate cannot take over another identity's session; the development listener keeps the
client's own id (no certificate, no username).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from broker.mosquitto.pki import Identity, Pki
from contract import topics

ROOM_WRITE_LEAVES = tuple(
    spec.leaf
    for spec in topics.ROOM_TOPICS
    if not spec.leaf.startswith(("cmd/", "sim/")) and spec.leaf not in topics.SENDER_LEAVES
)


@dataclass(frozen=True)
class BrokerSettings:
    """What `roomctl broker config` writes; defaults are the production ones."""

    site: str
    pki_dir: Path
    tls_port: int = 8883
    bind: str = ""
    dev_port: int | None = None
    state_dir: Path = Path("/var/lib/mosquitto")
    log_file: Path | None = None
    run_as: str = "mosquitto"
    autosave_interval: int = 60
    max_queued_messages: int = 1_000_000
    # Per client, on top of the count: a logger that is down queues at most this much in the
    # broker's memory (an hour of a 40-room clinic is ~150 MB), whatever one room sends.
    max_queued_bytes: int = 1024 * 1024 * 1024
    persistent_client_expiration: str = "7d"
    # 0 = no limit; NEVER set it for paho clients. Mosquitto 2.0.11 answers an over-limit QoS 1
    # publish with PUBACK reason 0x95, which paho 2.2 treats as a malformed packet: the client
    # reconnects and resends the same message forever. The size limit is `max_packet_size`.
    message_size_limit: int = 0
    # Every packet, every client, global in 2.0.11 (mosquitto.conf(5)): a bigger one is refused
    # as soon as its header arrives (the broker never reads or stores its body) and the client
    # is disconnected. MQTT 5 clients are told the limit in CONNACK (Maximum Packet Size), and
    # the room's outbox refuses a message above it instead of sending it (controller/publisher).
    max_packet_size: int = 131_072
    # Outgoing QoS 1 in flight per client: >= the room's window (100) and the logger's batch.
    max_inflight_messages: int = 100
    max_inflight_bytes: int = 16 * 1024 * 1024
    # A client asking for a longer keepalive, or none (0: never timed out), is told to use this
    # one (MQTT 5 server keepalive): a half-open connection is dropped within 1.5 x this.
    max_keepalive: int = 120
    # Per listener: connections above it are closed at once. Keep it below the broker's open
    # file limit (the central role sets LimitNOFILE), so a flood never takes the last file
    # descriptor; the firewall caps connections per source address (docs/PROVISIONING.md).
    max_connections: int = 2000
    # Demo/test only: rooms also read their own sim/button, staff may write it. Never set in
    # production: a real room ignores sim/button anyway, and the ACL should not carry it.
    simulation: bool = False


def acl_text(site: str, identities: list[Identity], simulation: bool = False) -> str:
    """The ACL file: one block per identity (see the module docstring)."""
    topics.check_ident("site", site)
    lines = [
        f"# roomctl ACL for site {site}: generated from the PKI inventory (roomctl broker config).",
        "# No lines before the first `user`: anonymous clients and unknown identities get nothing.",
        "",
    ]
    base = topics.site_prefix(site)
    for ident in identities:
        lines.append(f"user {ident.cn}")
        if ident.kind == "room":
            assert ident.name is not None
            for leaf in ROOM_WRITE_LEAVES:
                lines.append(f"topic write {topics.room_topic(site, ident.name, leaf)}")
            lines.append(f"topic read {topics.cmd_filter(site, ident.name)}")
            lines.append(f"topic read {topics.receipt_filter(site, ident.name)}")
            # a logger back online asks the rooms to resend their replay window
            lines.append(f"topic read {topics.logger_status_filter(site)}")
            if simulation:
                lines.append(f"topic read {topics.sim_button(site, ident.name)}")
        elif ident.kind == "staff":
            lines.append(f"topic read {base}/#")
            # only under its own name: the room takes the sender from the topic
            lines.append(f"topic write {base}/room/+/cmd/+/{ident.name}")
            lines.append(f"topic write {base}/room/+/receipt/{ident.name}")
            # the shift's assignments, under its own name too (the board's are believed)
            lines.append(f"topic write {topics.assignments(site, str(ident.name))}")
            if simulation:
                lines.append(f"topic write {base}/room/+/sim/button")
        elif ident.kind == "logger":
            lines.append(f"topic read {base}/#")
            lines.append(f"topic write {topics.logger_status(site, ident.name)}")
        elif ident.kind == "notifier":  # roomctl notify: receipts and its page reports
            assert ident.name is not None
            lines.append(f"topic read {base}/#")
            lines.append(f"topic write {base}/room/+/receipt/{ident.name}")
            lines.append(f"topic write {base}/room/+/page/{ident.name}")
        lines.append("")
    return "\n".join(lines)


def _template(name: str) -> str:
    return resources.files("broker.mosquitto").joinpath(f"templates/{name}").read_text()


def check_limits(settings: BrokerSettings) -> None:
    """ValueError naming the setting when a limit would wedge clients or be refused."""
    if settings.message_size_limit != 0:
        raise ValueError(
            "message_size_limit must stay 0: Mosquitto 2.0.11 answers it with a PUBACK that "
            "paho 2.2 takes for a malformed packet (resent forever); use max_packet_size"
        )
    if not 0 <= settings.max_packet_size <= 268_435_460 or 0 < settings.max_packet_size < 4096:
        raise ValueError("max_packet_size must be 0 (no limit) or 4096..268435460 bytes")
    if not 10 <= settings.max_keepalive <= 65535:
        raise ValueError("max_keepalive must be 10..65535 s (mosquitto.conf(5))")
    if settings.max_connections < 1 and settings.max_connections != -1:
        raise ValueError("max_connections must be -1 (no limit) or at least 1")
    for name in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages",
                 "max_inflight_bytes"):
        if getattr(settings, name) < 0:
            raise ValueError(f"{name} must be 0 (no limit) or more")


def config_text(settings: BrokerSettings, acl_path: Path) -> str:
    """The mosquitto.conf text; `acl_path` is where the ACL file is (or will be) written."""
    check_limits(settings)
    pki = Pki(settings.pki_dir)
    if pki.site != settings.site:
        raise ValueError(
            f"the PKI in {settings.pki_dir} is for site {pki.site!r}, not {settings.site!r}"
        )
    dev = ""
    if settings.dev_port is not None:
        dev = _template("dev-listener.conf.tmpl").format(port=settings.dev_port)
    if settings.log_file is not None:
        log_lines = f"log_dest file {settings.log_file}"
    else:
        log_lines = "log_dest stderr"
    user_line = f"user {settings.run_as}" if settings.run_as else ""
    # Revoked certificates are refused at the handshake. `roomctl pki init` always writes a CRL;
    # a PKI made before revocation existed gets one with `roomctl pki crl`.
    crl_line = f"crlfile {pki.crl.resolve()}" if pki.crl.exists() else ""
    return _template("central.conf.tmpl").format(
        site=settings.site,
        user_line=user_line,
        state_dir=str(settings.state_dir).rstrip("/"),
        autosave_interval=settings.autosave_interval,
        max_queued_messages=settings.max_queued_messages,
        persistent_client_expiration=settings.persistent_client_expiration,
        max_queued_bytes=settings.max_queued_bytes,
        message_size_limit=settings.message_size_limit,
        # Mosquitto refuses `max_packet_size 0`: no limit is no line.
        max_packet_line=(
            f"max_packet_size {settings.max_packet_size}" if settings.max_packet_size else ""
        ),
        max_inflight_messages=settings.max_inflight_messages,
        max_inflight_bytes=settings.max_inflight_bytes,
        max_keepalive=settings.max_keepalive,
        max_connections=settings.max_connections,
        log_lines=log_lines,
        tls_port=settings.tls_port,
        bind=settings.bind,
        cafile=pki.ca_cert.resolve(),
        certfile=pki.server_cert.resolve(),
        keyfile=pki.server_key.resolve(),
        crl_line=crl_line,
        acl_file=acl_path.resolve(),
        dev_listener=dev,
    )


def write_config(
    settings: BrokerSettings, out: Path, acl_out: Path | None = None
) -> tuple[Path, Path]:
    """Write mosquitto.conf to `out` and the ACL beside it (`<out stem>.acl`)."""
    out = Path(out)
    acl_path = Path(acl_out) if acl_out else out.with_suffix(".acl")
    pki = Pki(settings.pki_dir)
    text = config_text(settings, acl_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    acl_path.parent.mkdir(parents=True, exist_ok=True)
    acl_path.write_text(acl_text(settings.site, pki.inventory(), settings.simulation))
    out.write_text(text)
    return out, acl_path


def current_user() -> str:
    """The user to run a test broker as (so it can read the 0600 keys we just wrote)."""
    return getpass.getuser()
