"""A simulated fleet room on the room's own publishing path (issue 16).

`roomctl fleet simulate --outbox-rooms K` sends a sample of its rooms through this: the room
daemon's `Publisher` over the room's `Outbox` (SQLite WAL, fsync, in a state folder per room),
so their epochs, seqs, durability (calls, events and state stored before they are sent,
telemetry sent from memory and stored at the hold bound) and PUBACK handling are the real
ones. The simulator (`broker/fleet/simulate.py`, which may not import the room package) finds
this class through the `roomctl.fleet` entry point and drives it with its own MQTT client as
the link: `send` for each message, `service` with the PUBACKs received since.

Single-threaded, like the outbox: every call comes from the simulator's tick loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from contract.messages import Envelope
from controller.core.io_types import Publish
from controller.outbox import Outbox
from controller.publisher import Link, Publisher


class OutboxRoom:
    """One room's outbox (`<state_dir>/outbox.sqlite`) and publisher."""

    def __init__(self, site: str, room: str, state_dir: Path, window: int = 100):
        # no disk-full reserve file (4 MiB each on a shared load host): that is the room's
        # answer to a full SD card, not part of its numbering or durability
        self.outbox = Outbox(Path(state_dir) / "outbox.sqlite", ballast_bytes=0)
        self.publisher = Publisher(
            self.outbox, site, room, clock_synced=lambda: True, window=window
        )

    @property
    def epoch(self) -> str:
        return self.outbox.epoch

    @property
    def last_seq(self) -> int:
        return self.outbox.last_seq

    def send(self, model: type[Envelope], body: Mapping[str, Any], link: Link) -> None:
        """One message as the room daemon sends it: telemetry held and sent from memory,
        anything else stored (fsync) first, then pumped in seq order."""
        msg = Publish(model, dict(body))
        if self.publisher.can_hold([msg]):
            self.publisher.hold([msg], link)
        else:
            self.publisher.enqueue_many([msg])
            self.publisher.pump(link)

    def service(self, link: Link, pubacks: Iterable[tuple[int, bool, str]]) -> None:
        """Take PUBACKs (mid, ok, reason), record them, store telemetry past its hold bound,
        and hand what waits to the link."""
        for mid, ok, reason in pubacks:
            self.publisher.on_puback(mid, ok, reason)
        self.publisher.flush_acks()
        self.publisher.store_held()
        self.publisher.pump(link)

    def busy(self) -> bool:
        """True while anything is unacknowledged (stored and pending, or held in memory)."""
        return self.outbox.depth > 0 or self.publisher.seconds_to_store() is not None

    def close(self) -> None:
        """A clean stop (the room's next run continues its epoch at the next seq)."""
        self.outbox.close()
