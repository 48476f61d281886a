"""Where each call has reached (issue 15), pure: the notifier's latest page report per
(tier, nurse, channel) and the receipts of screens and phones, kept per call for the latest
calls of a room only (bounded), and the part of a call's view that shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contract.staff import CallReceipt, DeliveryReport
from contract.timefmt import format_ts

CALLS_KEPT = 20  # per room: the latest calls' pages and receipts
RECEIPTS_KEPT = 50  # per call

Deliveries = dict[str, dict[tuple[int, str, str], DeliveryReport]]
Receipts = dict[str, dict[tuple[str, str, str], datetime]]


def _trim(per_call: dict[str, Any]) -> None:
    while len(per_call) > CALLS_KEPT:  # the oldest call's go first
        per_call.pop(next(iter(per_call)))


def add_delivery(deliveries: Deliveries, report: DeliveryReport) -> None:
    deliveries.setdefault(report.call_id, {})[
        (report.tier, report.recipient, report.channel)
    ] = report
    _trim(deliveries)


def add_receipt(receipts: Receipts, got: CallReceipt) -> None:
    seen = receipts.setdefault(got.call_id, {})
    if len(seen) < RECEIPTS_KEPT:
        seen[(got.via, got.where, got.by)] = got.issued_at
    _trim(receipts)


def page_text(page: dict[str, Any]) -> str:
    """One page attempt in words, for the room's timeline (its time is shown beside it):
    "paged nina (ntfy) · call c1 tier 1 · delivered", "... · failed: HTTP 503, retry 3",
    "... · failed: HTTP 503, gave up after 5 attempts", "... · cancelled".

    `page`: a stored `pages` row or a call's page in the live view (the same keys)."""
    head = (
        f"paged {page['recipient']} ({page['channel']}) · call {page['call_id']} "
        f"tier {page['tier']}"
    )
    attempt = int(page["attempt"])
    if page["ok"]:
        result = "delivered" if attempt == 1 else f"delivered at attempt {attempt}"
    elif page["status"] == "cancelled":
        result = "cancelled"
    elif page["status"] == "pending":
        result = f"failed: {page['detail']}, retry {attempt + 1}"
    else:
        result = f"failed: {page['detail']}, gave up after {attempt} attempts"
    return f"{head} · {result}"


def view(deliveries: Deliveries, receipts: Receipts, call_id: str) -> dict[str, Any]:
    got = receipts.get(call_id, {})
    pages = []
    for d in deliveries.get(call_id, {}).values():
        page = {"call_id": d.call_id, "tier": d.tier, "recipient": d.recipient,
                "channel": d.channel, "ok": d.ok, "status": d.status, "detail": d.detail,
                "attempt": d.attempt, "at": format_ts(d.at)}  # fmt: skip
        page["text"] = page_text(page)
        pages.append(page)
    return {
        "deliveries": pages,
        "receipts": {
            "screens": len({where for via, where, _ in got if via == "screen"}),
            "phones": sorted({by for via, _, by in got if via == "phone"}),
        },
    }
