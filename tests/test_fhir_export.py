"""`roomctl log export --format fhir`: a scripted session from a real SQLite store as a FHIR R4
Bundle, validated with fhir.resources' R4B models and against the vital-signs profile's rules,
and sent to a FHIR server stand-in on loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from broker.logger.fhir_codes import LOINC, MDC, OBS_CATEGORY, UCUM
from broker.logger.fhir_export import post_bundle
from controller.cli import main
from tests.support.fhir_receiver import FhirReceiver, outcome
from tests.support.session_log import ROOM, SESSION, SITE, write_session

PATIENT = "Patient/p-1234"
# What the FHIR R4 vital-signs profiles require of each code (observation-vitalsigns.html).
PROFILE_CODE = {"2708-6": "%", "8867-4": "/min", "9279-1": "/min", "8310-5": "Cel"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return write_session(tmp_path / "log.db")


def export(capsys: pytest.CaptureFixture[str], db: Path, *extra: str) -> tuple[int, Any, str]:
    code = main(["log", "export", "--db", str(db), "--site", SITE, "--room", ROOM,
                 "--format", "fhir", *extra])  # fmt: skip
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def codes(obs: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in obs["code"]["coding"] if c["system"] == system]


def vitals(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in resources(bundle, "Observation") if "category" in o]


def test_session_bundle_validates_with_r4b_models(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    code, bundle, err = export(capsys, db, "--session", SESSION, "--patient-ref", PATIENT)
    assert code == 0, err
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    assert "96 vital-sign observation(s), 2 call(s), 1 alert(s)" in err
    assert len(resources(bundle, "Device")) == 2
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))


def test_observations_follow_the_vital_signs_profile(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    _, bundle, _ = export(capsys, db, "--session", SESSION, "--patient-ref", PATIENT)
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    seen: set[str] = set()
    for obs in vitals(bundle):
        assert obs["status"] == "final"
        assert obs["category"][0]["coding"][0] == {
            "system": OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs"
        }  # fmt: skip
        assert obs["subject"] == {"reference": PATIENT}
        assert obs["meta"]["profile"][0] == "http://hl7.org/fhir/StructureDefinition/vitalsigns"
        assert obs["effectiveDateTime"].startswith("2026-03-01T09:")
        assert codes(obs, MDC), "the IEEE 11073 MDC code alongside LOINC"
        monitor = by_url[obs["device"]["reference"]]
        assert monitor["resourceType"] == "Device"
        assert by_url[monitor["parent"]["reference"]]["identifier"][0]["value"] == "s1/101"
        loinc = codes(obs, LOINC)
        seen.update(loinc)
        if "85354-9" in loinc:
            parts = {codes(c, LOINC)[0]: c["valueQuantity"] for c in obs["component"]}
            assert {"8480-6", "8462-4"} <= parts.keys()
            assert all(q["system"] == UCUM and q["code"] == "mm[Hg]" for q in parts.values())
            continue
        quantity = obs["valueQuantity"]
        assert quantity["system"] == UCUM
        for loinc_code, unit in PROFILE_CODE.items():
            if loinc_code in loinc:
                assert quantity["code"] == unit
    assert {"2708-6", "59408-5", "8867-4", "85354-9"} <= seen


def test_effective_time_is_the_readings_own_time(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    _, bundle, _ = export(capsys, db, "--session", SESSION, "--patient-ref", PATIENT)
    low = [o for o in vitals(bundle) if "2708-6" in codes(o, LOINC)
           and o["valueQuantity"]["value"] == 88.0]  # fmt: skip
    assert [o["effectiveDateTime"] for o in low] == ["2026-03-01T09:12:00.000Z"]
    high = [o for o in vitals(bundle) if "85354-9" in codes(o, LOINC)
            and o["component"][0]["valueQuantity"]["value"] == 162.0]  # fmt: skip
    assert [o["effectiveDateTime"] for o in high] == ["2026-03-01T09:20:00.000Z"]
    # a blood pressure the monitor dated 5 minutes back (age_s): its own time, not the reading's
    at_40 = [o for o in vitals(bundle) if o["identifier"][0]["value"].endswith(
        ("/40/nibp", "/40/spo2"))]  # fmt: skip
    assert {codes(o, LOINC)[0]: o["effectiveDateTime"] for o in at_40} == {
        "85354-9": "2026-03-01T09:35:00.000Z", "2708-6": "2026-03-01T09:40:00.000Z"
    }  # fmt: skip


def test_invalid_and_demo_values_are_left_out_and_counted(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    _, bundle, err = export(capsys, db, "--session", SESSION, "--patient-ref", PATIENT)
    assert "left out: 2 demo value(s), 1 invalid value(s)" in err
    times = {(o["effectiveDateTime"], codes(o, LOINC)[0]) for o in vitals(bundle)}
    assert ("2026-03-01T09:25:00.000Z", "2708-6") not in times  # SpO2 flagged spo2_zero
    assert ("2026-03-01T09:25:00.000Z", "8867-4") in times  # its pulse was fine
    assert not any(t == "2026-03-01T09:26:00.000Z" for t, _ in times)  # the demo reading


def test_calls_and_alerts_are_observations_with_response_times(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    _, bundle, _ = export(capsys, db, "--session", SESSION, "--patient-ref", PATIENT)
    events = {o["identifier"][0]["value"]: o for o in resources(bundle, "Observation")
              if "category" not in o}  # fmt: skip
    c1, c2 = events["s1/101/call/c1"], events["s1/101/call/c2"]
    assert c1["component"][0]["code"]["text"] == "response time (claimed)"
    assert c1["component"][0]["valueQuantity"]["value"] == 42.0
    assert c1["valueCodeableConcept"]["text"].startswith("claimed by alice")
    assert c2["component"][0]["code"]["text"] == "response time (answered in the room)"
    assert c2["component"][0]["valueQuantity"]["value"] == 65.0
    assert c2["effectivePeriod"] == {
        "start": "2026-03-01T09:40:00.000Z", "end": "2026-03-01T09:41:05.000Z"
    }  # fmt: skip
    (alert,) = [o for k, o in events.items() if k.endswith("/alert")]
    assert alert["code"]["text"] == "Vital-sign alert: spo2_low"
    assert alert["effectivePeriod"]["end"] == "2026-03-01T09:14:00.000Z"
    assert alert["component"][0]["valueQuantity"]["value"] == 88.0


def test_no_patient_reference_is_never_invented(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    code, bundle, err = export(capsys, db, "--session", SESSION)
    assert code == 0
    Bundle.model_validate(bundle)
    assert not any("subject" in o or "meta" in o for o in resources(bundle, "Observation"))
    assert "no --patient-ref" in err
    code, _, err = export(capsys, db, "--session", SESSION, "--transaction")
    assert code == 2 and "--patient-ref" in err
    code, _, err = export(capsys, db, "--session", SESSION, "--patient-ref", "Jane Doe")
    assert code == 2 and "--patient-ref 'Jane Doe' is not a patient reference" in err


def test_unknown_session_and_missing_room_are_named(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    code, _, err = export(capsys, db, "--session", "nope")
    assert code == 2 and "--session 'nope': no such session" in err
    code = main(["log", "export", "--db", str(db), "--site", SITE, "--format", "fhir",
                 "--session", SESSION])  # fmt: skip
    assert code == 2 and "--room" in capsys.readouterr().err


def test_time_range_export_and_same_ids_twice(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    args = ("--since", "2026-03-01T09:10Z", "--until", "2026-03-01T09:15Z",
            "--patient-ref", PATIENT)  # fmt: skip
    _, first, err = export(capsys, db, *args)
    Bundle.model_validate(first)
    assert {o["effectiveDateTime"][11:16] for o in vitals(first)} == {
        "09:10", "09:11", "09:12", "09:13", "09:14"
    }  # fmt: skip
    assert "0 call(s), 1 alert(s)" in err
    _, second, _ = export(capsys, db, *args)
    assert first["entry"] == second["entry"] and first["id"] == second["id"]


def test_transaction_posted_to_a_fhir_server(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    with FhirReceiver([(200, None, {})], echo_transaction=True) as server:
        code, out, err = export(capsys, db, "--session", SESSION, "--patient-ref", PATIENT,
                                "--transaction", "--post", server.url)  # fmt: skip
    assert code == 0, err
    assert out is None  # --post without --out writes nothing to stdout
    (req,) = server.requests
    assert req.path == "/fhir"
    assert req.headers["Content-Type"] == "application/fhir+json"
    Bundle.model_validate(req.body)
    assert req.body["type"] == "transaction"
    assert all(e["request"]["ifNoneExist"].startswith("identifier=urn:roomctl:id|")
               for e in req.body["entry"])  # fmt: skip
    n = len(req.body["entry"])
    assert f"HTTP 200 after 1 attempt(s); transaction-response: {n} x 201" in err


def test_collection_posted_to_bundle_endpoint_and_refusal_reported(
    capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path
) -> None:
    refusal = outcome("error", "invalid", "Patient/p-1234 not found")
    with FhirReceiver([(422, refusal, {})]) as server:
        code, _, err = export(capsys, db, "--session", SESSION, "--patient-ref", PATIENT,
                              "--post", server.url, "--out", str(tmp_path / "b.json"))  # fmt: skip
    assert code == 1
    assert [r.path for r in server.requests] == ["/fhir/Bundle"]  # 4xx: not retried
    assert "HTTP 422 after 1 attempt(s); error invalid: Patient/p-1234 not found" in err
    Bundle.model_validate_json((tmp_path / "b.json").read_text())


def test_post_retries_server_errors_then_succeeds() -> None:
    waits: list[float] = []
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    answers = [(503, None, {}), (429, None, {"Retry-After": "3"}),
               (200, {"resourceType": "Bundle", "type": "transaction-response"}, {})]  # fmt: skip
    with FhirReceiver(answers) as server:
        got = post_bundle(server.url, bundle, attempts=4, backoff_s=0.5, sleep=waits.append)
    assert got.ok and got.status == 200 and got.attempts == 3
    assert waits == [0.5, 3.0]  # doubling backoff; the server's Retry-After honoured


def test_post_to_nothing_gives_up_and_says_why() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nobody listens there
    waits: list[float] = []
    got = post_bundle(f"http://127.0.0.1:{port}/fhir", {"type": "collection"}, attempts=3,
                      backoff_s=0.25, sleep=waits.append)  # fmt: skip
    assert not got.ok and got.status is None and got.attempts == 3
    assert waits == [0.25, 0.5]
    assert "no answer after 3 attempt(s); error:" in got.text()
