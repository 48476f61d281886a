"""A session (or a time range) of one room as a FHIR R4 Bundle, for the patient's record.

How this works: the caller reads the stored rows through the store (`export_rows`), this module
turns them into plain JSON dicts (no FHIR library at run time; the tests validate every bundle
with `fhir.resources`' R4B models):

- one `Observation` per reading and field (blood pressure: one panel per reading with systolic,
  diastolic and mean components), coded LOINC + IEEE 11073 MDC, UCUM units, category
  `vital-signs`, `effectiveDateTime` = the value's own observation time: the reading's `ts`
  less the value's age when the monitor dates its values (`age_s` in `vitals.detail`: an
  aperiodic NIBP measured minutes before, HL7 OBX-14), else the reading's `ts`; the
  vital-signs profile claimed when a patient is referenced;
- a `Device` for the bedside monitor (its protocol) whose `parent` is a `Device` for the room's
  controller; every Observation names the monitor as its `device`;
- the subject is the patient reference the caller supplied (`--patient-ref`), never invented:
  without one, no `subject` and no profile claim (the profiles require a subject);
- calls and vital alerts as `Observation`s, not `Flag`s: a Flag is a standing warning about the
  patient shown to every later reader of the chart ("fall risk") until someone ends it, whereas
  a call or an alert during an infusion is a finished event with a time span and a response
  time, which is what an Observation records (`effectivePeriod`, components);
- values flagged invalid (their quality flag, or the oximeter's sensor-off/artifact flags) or
  demo (a monitor in demonstration mode) are left out and counted, never exported.

Resource ids are name-based UUIDs of (site, room, epoch, seq, field), so the same export twice
gives the same bundle; a `transaction` bundle creates each resource with `ifNoneExist` on its
identifier, so posting it again adds nothing to the record.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from broker.logger.fhir_codes import (
    ALERT_CODE,
    BP_FIELDS,
    BP_PANEL,
    CALL_CODE,
    DATA_ABSENT,
    DEMO_FLAGS,
    INVALID_STATUS_PREFIX,
    INVALID_SUFFIXES,
    MONITOR_TYPE,
    OBS_CATEGORY,
    OXIMETER_FIELDS,
    OXIMETER_INVALIDATING,
    ROOM_TYPE,
    ROOMCTL_ID,
    SECONDS,
    SINGLE_FIELDS,
    UCUM,
    VITAL_CODES,
    VITALSIGNS,
    VitalCode,
)
from contract.timefmt import format_ts, parse_ts

_NS = uuid.UUID("6f1c2a7e-3d0b-5b1e-9a52-0c3f7d9e1a44")
# Patient/<id> (FHIR id: 1-64 of A-Za-z0-9-.), an absolute URL ending so, or a urn:uuid.
_PATIENT_REF = re.compile(
    r"^(?:https?://[^\s/]+(?:/[^\s/]+)*/)?Patient/[A-Za-z0-9\-.]{1,64}$"
    r"|^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
CALL_TYPE_WORDS = {"normal": "Call", "bath": "Bathroom call", "assist": "Staff assist call",
                   "emergency": "Emergency call", "cord_out": "Call cord unplugged",
                   "test": "TEST call (staff test, not a patient)"}  # fmt: skip


def check_patient_ref(value: str) -> str:
    """`value` if it is a FHIR reference to a Patient, else ValueError naming --patient-ref."""
    text = value.strip()
    if not _PATIENT_REF.match(text):
        raise ValueError(
            f"--patient-ref {value!r} is not a patient reference: use Patient/<id> "
            "(letters, digits, '-' and '.', at most 64), a full URL ending in Patient/<id>, "
            "or urn:uuid:<uuid>"
        )
    return text


@dataclass
class FhirSummary:
    """What an export put in the bundle and what it left out (and why)."""

    observations: int = 0
    calls: int = 0
    alerts: int = 0
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> values

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1

    def text(self) -> str:
        out = f"{self.observations} vital-sign observation(s), {self.calls} call(s), "
        out += f"{self.alerts} alert(s)"
        if self.left_out:
            out += "; left out: " + ", ".join(
                f"{n} {reason} value(s)" for reason, n in sorted(self.left_out.items())
            )
        return out


@dataclass(frozen=True)
class ExportScope:
    """Which room and window the bundle covers, and for whom."""

    site: str
    room: str
    since: str | None
    until: str | None
    session_id: str | None = None
    patient_ref: str | None = None
    transaction: bool = False


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


def _quality(row: dict[str, Any]) -> list[str]:
    raw = row.get("quality")
    if isinstance(raw, list):
        return [str(q) for q in raw]
    if not raw:
        return []
    try:
        got = json.loads(raw)
    except (TypeError, ValueError):
        return ["quality_unreadable"]
    return [str(q) for q in got] if isinstance(got, list) else []


def _ages(row: dict[str, Any]) -> dict[str, float]:
    """Per field, how old the value was when the room sent the reading (`vitals.detail`'s
    `age_s`, from monitors that date each value: an aperiodic NIBP, HL7 OBX-14)."""
    raw = row.get("detail")
    try:
        detail = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
    except ValueError:
        return {}
    ages = detail.get("age_s") if isinstance(detail, dict) else None
    if not isinstance(ages, dict):
        return {}
    return {str(k): float(v) for k, v in ages.items() if isinstance(v, int | float)}


def observed(ts: str, age_s: float | None) -> str:
    """The value's own observation time: the reading's time less the value's age."""
    if not age_s:
        return ts
    return format_ts(parse_ts(ts) - timedelta(seconds=age_s))


def value_verdict(name: str, value: Any, flags: list[str]) -> str | None:
    """None when `value` of field `name` goes in the record; else why not: 'invalid' (its own
    quality flag says so, or a value under an oximeter fault), 'demo' (the monitor was in
    demonstration mode), or 'absent' (nothing measured and nothing flagged: not counted)."""
    own = [f for f in flags if f.startswith(name + "_")]
    if any(
        f.endswith(INVALID_SUFFIXES) or f.startswith(name + INVALID_STATUS_PREFIX) for f in own
    ):
        return "invalid"
    if value is None:
        return "absent"
    if any(f in DEMO_FLAGS or f.startswith("demo_") for f in flags):
        return "demo"
    if name in OXIMETER_FIELDS and OXIMETER_INVALIDATING.intersection(flags):
        return "invalid"
    return None


def _concept(vc: VitalCode) -> dict[str, Any]:
    return {"coding": [c.coding() for c in (*vc.loinc, vc.mdc)], "text": vc.name}


def _quantity(vc: VitalCode, value: float) -> dict[str, Any]:
    return {"value": value, "unit": vc.unit, "system": UCUM, "code": vc.ucum}


class BundleBuilder:
    """Collects resources for one bundle; `bundle()` returns the JSON dict."""

    def __init__(self, scope: ExportScope, generated: str) -> None:
        self.scope = scope
        self.generated = generated
        self.summary = FhirSummary()
        self._entries: list[dict[str, Any]] = []
        self._devices: dict[str, str] = {}  # protocol -> monitor Device fullUrl
        self._room_url = self._add_room_device()

    # -- devices ---------------------------------------------------------------------------
    def _entry(self, resource: dict[str, Any], ident: str) -> str:
        url = f"urn:uuid:{resource['id']}"
        entry: dict[str, Any] = {"fullUrl": url, "resource": resource}
        if self.scope.transaction:
            entry["request"] = {
                "method": "POST",
                "url": resource["resourceType"],
                "ifNoneExist": f"identifier={ROOMCTL_ID}|{ident}",
            }
        self._entries.append(entry)
        return url

    def _add_room_device(self) -> str:
        s = self.scope
        ident = f"{s.site}/{s.room}"
        resource = {
            "resourceType": "Device",
            "id": _uuid("device", ident),
            "identifier": [{"system": ROOMCTL_ID, "value": ident}],
            "status": "active",
            "type": {"coding": [ROOM_TYPE.coding()], "text": ROOM_TYPE.display},
            "deviceName": [{"name": f"site {s.site}, room {s.room}", "type": "user-friendly-name"}],
        }
        return self._entry(resource, ident)

    def monitor(self, protocol: str) -> str:
        """The monitor Device of `protocol` (one per protocol seen), made on first use."""
        if protocol not in self._devices:
            s = self.scope
            ident = f"{s.site}/{s.room}/monitor/{protocol}"
            resource = {
                "resourceType": "Device",
                "id": _uuid("device", ident),
                "identifier": [{"system": ROOMCTL_ID, "value": ident}],
                "status": "active",
                "type": {"coding": [MONITOR_TYPE.coding()], "text": MONITOR_TYPE.display},
                "deviceName": [
                    {"name": f"room {s.room} monitor ({protocol})", "type": "user-friendly-name"}
                ],
                "parent": {"reference": self._room_url},
            }
            self._devices[protocol] = self._entry(resource, ident)
        return self._devices[protocol]

    # -- observations ----------------------------------------------------------------------
    def _observation(
        self, ident: str, vc: VitalCode | None, code: dict[str, Any], ts: str, device: str | None
    ) -> dict[str, Any]:
        obs: dict[str, Any] = {"resourceType": "Observation", "id": _uuid("obs", ident)}
        if vc is not None and self.scope.patient_ref:
            obs["meta"] = {"profile": [VITALSIGNS] + ([vc.profile] if vc.profile else [])}
        obs["identifier"] = [{"system": ROOMCTL_ID, "value": ident}]
        obs["status"] = "final"
        if vc is not None:
            obs["category"] = [
                {"coding": [{"system": OBS_CATEGORY, "code": "vital-signs",
                             "display": "Vital Signs"}], "text": "Vital Signs"}
            ]
        obs["code"] = code
        if self.scope.patient_ref:
            obs["subject"] = {"reference": self.scope.patient_ref}
        obs["effectiveDateTime"] = ts
        if device is not None:
            obs["device"] = {"reference": device}
        return obs

    def add_reading(self, row: dict[str, Any]) -> None:
        """One stored vitals row: an Observation per valid field, a BP panel when it has one."""
        flags = _quality(row)
        ages = _ages(row)
        base = f"{row['site']}/{row['room']}/{row['epoch']}/{row['seq']}"
        device = self.monitor(str(row.get("protocol") or "unknown"))
        for name in SINGLE_FIELDS:
            verdict = value_verdict(name, row.get(name), flags)
            if verdict is not None:
                if verdict != "absent":
                    self.summary.leave_out(verdict)
                continue
            vc = VITAL_CODES[name]
            at = observed(row["ts"], ages.get(name))
            obs = self._observation(f"{base}/{name}", vc, _concept(vc), at, device)
            obs["valueQuantity"] = _quantity(vc, float(row[name]))
            self._entry(obs, f"{base}/{name}")
            self.summary.observations += 1
        self._add_bp(row, flags, base, device, ages)

    def _add_bp(
        self, row: dict[str, Any], flags: list[str], base: str, device: str,
        ages: dict[str, float],
    ) -> None:  # fmt: skip
        components = []
        for name in BP_FIELDS:
            verdict = value_verdict(name, row.get(name), flags)
            vc = VITAL_CODES[name]
            comp: dict[str, Any] = {"code": _concept(vc)}
            if verdict is None:
                comp["valueQuantity"] = _quantity(vc, float(row[name]))
            else:
                if verdict != "absent":
                    self.summary.leave_out(verdict)
                if name == "nibp_mean":
                    continue  # optional: left out when it has no value
                comp["dataAbsentReason"] = {
                    "coding": [{"system": DATA_ABSENT, "code": "error" if verdict != "absent"
                                else "unknown"}]
                }
            components.append(comp)
        if not any("valueQuantity" in c for c in components):
            return
        ident = f"{base}/nibp"
        age = next((ages[f] for f in BP_FIELDS if f in ages), None)  # the cuff's measurement
        at = observed(row["ts"], age)
        obs = self._observation(ident, BP_PANEL, _concept(BP_PANEL), at, device)
        obs["component"] = components
        self._entry(obs, ident)
        self.summary.observations += 1

    def add_call(self, row: dict[str, Any]) -> None:
        """A calls row (placed, claimed, cancelled, ...) as an Observation over its span."""
        s = self.scope
        ident = f"{s.site}/{s.room}/call/{row['call_id']}"
        kind = str(row.get("type") or "normal")  # the call's type, when the contract has one
        words = CALL_TYPE_WORDS.get(kind, kind.replace("_", " ").capitalize() + " call")
        priority = row.get("priority") or "normal"
        obs = self._observation(
            ident, None,
            {"coding": [CALL_CODE.coding()], "text": f"{words} ({priority} priority)"},
            row.get("placed_at") or row.get("escalated_at") or row.get("claimed_at") or "", None,
        )  # fmt: skip
        del obs["effectiveDateTime"]
        start = row.get("placed_at") or row.get("escalated_at") or row.get("claimed_at")
        period = {"start": start} if start else {}
        if row.get("cancelled_at"):
            period["end"] = row["cancelled_at"]
        obs["status"] = "final" if row.get("cancelled_at") else "preliminary"
        obs["effectivePeriod"] = period
        obs["device"] = {"reference": self._room_url}
        obs["valueCodeableConcept"] = {"text": call_outcome(row)}
        comps = []
        answered = call_response(row)
        if answered is not None:
            comps.append({"code": {"text": f"response time ({answered[1]})"},
                          "valueQuantity": {"value": answered[0], **SECONDS}})  # fmt: skip
        if row.get("escalated_at"):
            comps.append({"code": {"text": "escalated at"}, "valueDateTime": row["escalated_at"]})
        if comps:
            obs["component"] = comps
        self._entry(obs, ident)
        self.summary.calls += 1

    def add_alert(self, raised: dict[str, Any], cleared: dict[str, Any] | None) -> None:
        """A vital alert (its raised event, and the clearing one if any) as an Observation."""
        s = self.scope
        detail = raised.get("detail") or {}
        name = str(detail.get("name") or "alert")
        ident = f"{s.site}/{s.room}/{raised['epoch']}/{raised['seq']}/alert"
        obs = self._observation(
            ident, None, {"coding": [ALERT_CODE.coding()], "text": f"Vital-sign alert: {name}"},
            raised["ts"], None,
        )  # fmt: skip
        del obs["effectiveDateTime"]
        period = {"start": raised["ts"]}
        if cleared is not None:
            period["end"] = cleared["ts"]
        obs["effectivePeriod"] = period
        obs["device"] = {"reference": self._room_url}
        obs["valueCodeableConcept"] = {"text": str(raised.get("reason") or name)}
        vc = VITAL_CODES.get(str(detail.get("field")))
        value = detail.get("value")
        if vc is not None and isinstance(value, int | float):
            obs["component"] = [{"code": _concept(vc), "valueQuantity": _quantity(vc, value)}]
        self._entry(obs, ident)
        self.summary.alerts += 1

    def bundle(self) -> dict[str, Any]:
        s = self.scope
        window = s.session_id or f"{s.since or ''}..{s.until or ''}"
        return {
            "resourceType": "Bundle",
            "id": _uuid("bundle", s.site, s.room, window, s.transaction),
            "identifier": {"system": ROOMCTL_ID, "value": f"{s.site}/{s.room}/{window}"},
            "type": "transaction" if s.transaction else "collection",
            "timestamp": self.generated,
            "entry": self._entries,
        }



def call_response(row: dict[str, Any]) -> tuple[float, str] | None:
    """(seconds, how) a call was answered: claimed at the board, else ended in the room (cancel or
    presence: a nurse was there); None while nobody has answered it."""
    if row.get("response_s") is not None:
        return float(row["response_s"]), "claimed"
    if row.get("resolved_s") is not None:
        return float(row["resolved_s"]), "answered in the room"
    return None


def call_outcome(row: dict[str, Any]) -> str:
    """The call's outcome in words."""
    parts = []
    if row.get("claimed_at"):
        parts.append(f"claimed by {row.get('claimed_by') or 'staff'}")
    if row.get("escalated_at"):
        parts.append("escalated")
    if row.get("cancelled_at"):
        who = row.get("cancelled_by")
        parts.append(f"ended in the room{' by ' + str(who) if who else ''}")
    else:
        parts.append("still open at export")
    return ", ".join(parts)


def pair_alerts(
    events: Iterable[dict[str, Any]],
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(raised, cleared or None) for every alert_raised event, in order; the clearing event is
    the next alert_cleared of the same alert name."""
    open_: dict[str, int] = {}
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for e in events:
        name = str((e.get("detail") or {}).get("name") or "")
        if e["kind"] == "alert_raised":
            open_[name] = len(out)
            out.append((e, None))
        elif e["kind"] == "alert_cleared" and name in open_:
            i = open_.pop(name)
            out[i] = (out[i][0], e)
    return out
