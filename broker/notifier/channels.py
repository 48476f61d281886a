"""The two ways a page leaves: a generic webhook (JSON POST signed with HMAC-SHA256) and an
ntfy-compatible push (POST to `<url>/<nurse's topic>`). Standard library HTTP with a timeout:
a receiver that hangs costs one worker for `timeout_s`, never the notifier.

Webhook headers: `X-Roomctl-Delivery` (the delivery id: the same on a retry, so a receiver
can drop a repeat), `X-Roomctl-Timestamp` (Unix seconds) and `X-Roomctl-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the shared secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

NTFY_PRIORITY = {"high": "5", "medium": "4", "low": "3"}


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def page_text(page: dict[str, Any]) -> str:
    """`Room 101: CALL (tier 2), placed 23:08 EST` (the site's clock)."""
    tier = f" (tier {page['tier']})" if page["tier"] > 1 else ""
    placed = f", placed {page['placed_local']}" if page.get("placed_local") else ""
    return f"Room {page['room']}: {page['what']}{tier}{placed}"


def webhook_request(
    url: str, secret: bytes, page: dict[str, Any], delivery_id: str, now: float
) -> Request:
    body = json.dumps({**page, "delivery_id": delivery_id}, separators=(",", ":")).encode()
    ts = str(int(now))
    return Request(url, body, {
        "Content-Type": "application/json",
        "X-Roomctl-Delivery": delivery_id,
        "X-Roomctl-Timestamp": ts,
        "X-Roomctl-Signature": signature(secret, ts, body),
    })  # fmt: skip


def ntfy_request(base: str, topic: str, page: dict[str, Any], delivery_id: str) -> Request:
    return Request(base.rstrip("/") + "/" + topic, page_text(page).encode(), {
        "Title": f"roomctl {page['site']}: room {page['room']}",
        "Priority": NTFY_PRIORITY.get(page["level"], "3"),
        "Tags": "rotating_light" if page["emergency"] else "bell",
        "X-Roomctl-Delivery": delivery_id,
    })  # fmt: skip


def send(req: Request, timeout_s: float) -> tuple[bool, str]:
    """One attempt: (delivered?, what happened in words). Never raises."""
    http = urllib.request.Request(req.url, data=req.body, headers=req.headers, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=timeout_s) as resp:
            return True, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (TimeoutError, OSError) as exc:  # URLError is an OSError; a hang is a timeout
        reason = getattr(exc, "reason", exc)
        return False, "timed out" if "timed out" in str(reason) else f"no answer: {reason}"
