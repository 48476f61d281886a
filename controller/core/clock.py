"""Clock steps: the core's timers follow the monotonic clock, whatever the wall clock does.

The machines keep wall-clock times (they are published and stored, and survive a restart),
and their deadlines are computed from them. A step of the wall clock (chrony's `makestep`
at boot, an operator setting the date) would otherwise fire an escalation at once or delay
it by hours. `RoomCore` compares each event's wall and monotonic times with the previous
ones; when they disagree by more than `STEP_TOLERANCE_S`, it shifts every wall time it
keeps by the step (`shifted`), so each elapsed time stays what the monotonic clock says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from controller.core.io_types import Instant

STEP_TOLERANCE_S = 1.0

T = TypeVar("T")


def clock_step(before: Instant, now: Instant) -> timedelta | None:
    """How far the wall clock jumped between two instants (None if it did not)."""
    drift = (now.wall - before.wall).total_seconds() - (now.mono - before.mono)
    return timedelta(seconds=drift) if abs(drift) > STEP_TOLERANCE_S else None


def shifted(value: T, step: timedelta) -> T:
    """`value` with every datetime inside it (dataclasses, models, mappings, tuples) moved."""
    out: Any
    if isinstance(value, datetime):
        out = value + step
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: shifted(getattr(value, f.name), step) for f in dataclasses.fields(value)}
        out = dataclasses.replace(value, **changes)
    elif isinstance(value, BaseModel):
        out = value.model_copy(
            update={name: shifted(getattr(value, name), step) for name in type(value).model_fields}
        )
    elif isinstance(value, Mapping):
        out = {k: shifted(v, step) for k, v in value.items()}
    elif isinstance(value, tuple):
        out = tuple(shifted(v, step) for v in value)
    else:
        out = value
    return out  # type: ignore[no-any-return]
