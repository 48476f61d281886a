"""The one queue every board page shows (and `roomctl status` rings for): pure, from room views.

How this works: `site_queue(views)` turns the room views of `live.room_view` into one list of
what needs a person: every active call, every HIGH or MEDIUM vital or monitor alarm, and a
room that went offline during a session (a HIGH technical alarm: its calls cannot be known).
It is sorted by level (high first), then by age (oldest first), then by room, so an emergency
in room 221 is at the top whatever its room number. The browser draws this list as it is;
sound, silencing and the tab title are decided in the page from the same items.
"""

from __future__ import annotations

from typing import Any

from .calls_view import LEVELS

QUEUE_LEVELS = ("high", "medium")  # alarms below this stay on the tile only
_RANK = {level: n for n, level in enumerate(LEVELS)}


def _call_items(view: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in view.get("calls") or []:
        emergency = c["type"] == "emergency" or c["priority"] == "emergency"
        out.append(
            {
                "key": f"call|{view['room']}|{c['call_id']}",
                "kind": "call",
                "room": view["room"],
                "level": c["level"],
                "since": c["placed_at"],
                "what": c["what"],
                "type": c["type"],
                "call_id": c["call_id"],
                "status": c["status"],
                "tier": c["tier"],
                "emergency": emergency,
                "claimed_by": c["claimed_by"],
                "placed_at": c["placed_at"],
                "escalated_at": c["escalated_at"],
                "deliveries": c.get("deliveries", []),
                "receipts": c.get("receipts", {"screens": 0, "phones": []}),
                "presence": view.get("presence") is not None,
                # the room is offline: this is what it said last, not known to be current
                "last_known": bool(view.get("offline")),
                # sounds until a person claims it (or is in the room: presence answers it)
                "sounding": c["status"] in ("placed", "escalated"),
            }
        )
    return out


def _alarm_items(view: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for a in view.get("alerts") or []:
        if a["severity"] not in QUEUE_LEVELS:
            continue
        if a["source"] == "monitor":
            what = f"monitor alarm: {a['name']}"
        else:
            value = "–" if a["value"] is None else f"{a['value']:.0f}"
            what = f"{a['name']} ({a['field']} {value})"
        out.append(
            {
                "key": f"alarm|{view['room']}|{a['source']}|{a['name']}",
                "kind": "alarm",
                "room": view["room"],
                "level": a["severity"],
                "since": a["since"],
                "what": what,
                "type": a["source"],
                "emergency": False,
                "presence": view.get("presence") is not None,
                "last_known": bool(view.get("offline")),
                "sounding": True,
            }
        )
    return out


def _technical_items(view: dict[str, Any]) -> list[dict[str, Any]]:
    if not view.get("offline_in_session"):
        return []
    return [
        {
            "key": f"offline|{view['room']}",
            "kind": "technical",
            "room": view["room"],
            "level": "high",
            "since": view.get("offline_since"),
            "what": "ROOM OFFLINE: call status unknown",
            "type": "offline",
            "emergency": False,
            "presence": False,
            "last_known": True,
            "sounding": True,
        }
    ]


def site_queue(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every open call and HIGH/MEDIUM alarm of the site, most urgent first."""
    items: list[dict[str, Any]] = []
    for view in views:
        items += _technical_items(view) + _call_items(view) + _alarm_items(view)
    # ISO-8601 UTC times with the same format sort as text; an unknown time sorts last
    return sorted(
        items, key=lambda i: (_RANK.get(i["level"], 9), i["since"] or "\uffff", i["room"])
    )


def new_calls(before: set[str], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls of `items` that are not in `before` (call keys): what rings the bell."""
    return [i for i in items if i["kind"] == "call" and i["key"] not in before]
