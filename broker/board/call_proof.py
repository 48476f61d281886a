"""Where each call has reached (issue 15), pure: the notifier's latest page report per
(tier, nurse, channel) and the receipts of screens and phones, kept per call for the latest
calls of a room only (bounded), and the part of a call's view that shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contract.messages import CallReceipt, DeliveryReport

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


def view(deliveries: Deliveries, receipts: Receipts, call_id: str) -> dict[str, Any]:
    got = receipts.get(call_id, {})
    pages = [
        {"tier": d.tier, "recipient": d.recipient, "channel": d.channel, "ok": d.ok,
         "status": d.status, "detail": d.detail, "attempt": d.attempt}
        for d in deliveries.get(call_id, {}).values()
    ]  # fmt: skip
    return {
        "deliveries": pages,
        "receipts": {
            "screens": len({where for via, where, _ in got if via == "screen"}),
            "phones": sorted({by for via, _, by in got if via == "phone"}),
        },
    }
