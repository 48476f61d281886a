"""`roomctl log export --format fhir`: read a session or a window through the store, build the
bundle (`fhir.py`), write it, and optionally send it to a FHIR server (`--post`) with retries.

Sending: a `transaction` bundle is POSTed to the server's base URL, a `collection` bundle to
`<base>/Bundle` (stored as a document-like Bundle resource), as `application/fhir+json`.
A refused connection, a timeout, 429 and 5xx are retried (`attempts`, backoff doubling from
`backoff_s`, honouring a short Retry-After); any other answer is final. The outcome reports the
HTTP status, the Location, and the server's `OperationOutcome` issues or, for a
transaction-response, how many entries were created or already there.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.logger.fhir import BundleBuilder, ExportScope, FhirSummary, pair_alerts
from broker.logger.store import LogStore
from contract import topics
from contract.timefmt import format_ts

MAX_RETRY_AFTER_S = 30.0


def session_scope(
    store: LogStore, site: str, room: str, session_id: str, **kw: Any
) -> ExportScope:
    """The scope of a stored session: from its start to its end (or open: still running)."""
    row = store.session(site, room, session_id)
    if row is None:
        raise ValueError(f"--session {session_id!r}: no such session in room {room} of {site}")
    return ExportScope(site, room, str(row["started_at"]), row.get("ended_at"), session_id, **kw)


def build_bundle(
    store: LogStore, scope: ExportScope, now: datetime | None = None
) -> tuple[dict[str, Any], FhirSummary]:
    """The bundle of `scope` and what went in and was left out."""
    topics.check_ident("site", scope.site)
    topics.check_ident("room", scope.room)
    builder = BundleBuilder(scope, format_ts(now or datetime.now(UTC)))
    args = (scope.site, scope.room, scope.since, scope.until)
    for row in store.export_rows("vitals", *args):
        builder.add_reading(row)
    for row in store.export_rows("calls", *args):
        builder.add_call(row)
    events = []
    for row in store.export_rows("events", *args):
        if row["kind"] in ("alert_raised", "alert_cleared"):
            detail = row.get("detail")
            events.append({**row, "detail": json.loads(detail) if detail else {}})
    for raised, cleared in pair_alerts(events):
        builder.add_alert(raised, cleared)
    return builder.bundle(), builder.summary


@dataclass
class PostOutcome:
    """What the FHIR server answered (the last attempt), and how many attempts it took."""

    ok: bool
    status: int | None
    attempts: int
    location: str | None = None
    detail: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = f"HTTP {self.status}" if self.status is not None else "no answer"
        out = f"FHIR server: {head} after {self.attempts} attempt(s)"
        if self.location:
            out += f", Location {self.location}"
        return "; ".join([out, *self.detail])


def _describe(body: bytes) -> list[str]:
    """The server's own words: OperationOutcome issues, or a transaction-response's tally."""
    try:
        doc = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return [f"body: {text[:200]}"] if text else []
    if not isinstance(doc, dict):
        return []
    if doc.get("resourceType") == "OperationOutcome":
        return [
            f"{i.get('severity', '?')} {i.get('code', '?')}: "
            + str(i.get("diagnostics") or (i.get("details") or {}).get("text") or "")
            for i in doc.get("issue") or []
            if isinstance(i, dict)
        ]
    if doc.get("resourceType") == "Bundle":
        statuses: dict[str, int] = {}
        for e in doc.get("entry") or []:
            status = str(((e or {}).get("response") or {}).get("status") or "?").split()[0]
            statuses[status] = statuses.get(status, 0) + 1
        tally = ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items()))
        return [f"{doc.get('type')}: {tally}"]
    return []


def post_bundle(
    base_url: str,
    bundle: dict[str, Any],
    attempts: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 30.0,
    cafile: str | None = None,
    token: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PostOutcome:
    """Send `bundle`; retry what may pass later; never raise for the server's answer."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"--post {base_url!r}: use an http:// or https:// URL")
    url = base_url.rstrip("/") + ("" if bundle.get("type") == "transaction" else "/Bundle")
    body = json.dumps(bundle, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    outcome = PostOutcome(False, None, 0)
    for attempt in range(1, max(1, attempts) + 1):
        outcome.attempts = attempt
        wait = backoff_s * 2 ** (attempt - 1)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:
                return PostOutcome(
                    200 <= resp.status < 300, resp.status, attempt,
                    resp.headers.get("Location"), _describe(resp.read()),
                )  # fmt: skip
        except urllib.error.HTTPError as exc:
            with exc:
                outcome = PostOutcome(False, exc.code, attempt, None, _describe(exc.read()))
            if exc.code != 429 and exc.code < 500:
                return outcome
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            if retry_after and retry_after.strip().isdigit():
                wait = min(float(retry_after), MAX_RETRY_AFTER_S)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            outcome = PostOutcome(False, None, attempt, None, [f"error: {reason}"])
        if attempt < attempts:
            sleep(wait)
    return outcome
