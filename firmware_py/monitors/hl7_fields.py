"""Reading fields of a segment parsed by the `hl7` library (python-hl7 0.4.5).

`get` walks the library's containers directly (its `extract_field` builds an Accessor per
call and raises on short paths) and unescapes with the library's `unescape`; a shape it
does not foresee reads as absent, never raises.
"""

from __future__ import annotations

from typing import Any

from hl7.util import unescape as hl7_unescape


def get(seg: Any, field: int, comp: int = 1) -> str:
    """Field `field`, component `comp` (first repetition) of an hl7.Segment; "" if absent.

    Walks the library's containers directly (its `extract_field` builds an Accessor per
    call and raises on short paths) and unescapes with the library's `unescape`.
    """
    try:
        if field >= len(seg):
            return ""
        parts = seg[field]
        if not parts:
            return ""
        rep = parts[0]
        if isinstance(rep, str):
            value = rep if comp == 1 else ""
        elif comp > len(rep):
            return ""
        else:
            part = rep[comp - 1]
            value = part if isinstance(part, str) else str(part[0]) if part else ""
        if seg.esc in value and field > 2:
            return str(hl7_unescape(seg, value))
        return value
    except Exception:  # a container shape we did not foresee: treat as absent
        return ""


def field_text(seg: Any, field: int) -> str:
    """Every component of field `field` (first repetition), joined by spaces."""
    parts = [get(seg, field, n) for n in range(1, 4)]
    return " ".join(p for p in parts if p)


def reps(seg: Any, field: int) -> list[str]:
    """The first component of every repetition of field `field`, upper-case."""
    try:
        if field >= len(seg) or not seg[field]:
            return []
        out = []
        for rep in list(seg[field])[:8]:
            text = rep if isinstance(rep, str) else str(rep[0]) if len(rep) else ""
            if text.strip():
                out.append(text.strip().upper())
        return out
    except Exception:
        return []
