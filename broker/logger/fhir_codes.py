"""The one table of how a stored vital becomes a FHIR R4 Observation: LOINC, IEEE 11073 MDC, UCUM.

A row per vital field of the contract (`contract.vitals.VITAL_NAMES`). `profile` names the FHIR
R4 vital-signs profile the Observation claims (None: no vital-signs profile covers it, so the
Observation carries the `vital-signs` category but claims only the base profile when it has a
subject). Blood pressure is one panel (85354-9) whose components are the three NIBP fields.

Sources: FHIR R4 "Vital Signs" profiles (observation-vitalsigns.html), LOINC, and the MDC
codes the room's HL7 PCD-01 parser reads (`firmware_py/monitors/hl7_codes.py`, not imported:
the central side imports the contract only).
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
VITALSIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
# roomctl's own codes (calls, alerts, devices) and identifiers: a URN, as FHIR allows.
ROOMCTL_CODES = "urn:roomctl:code"
ROOMCTL_ID = "urn:roomctl:id"


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True)
class VitalCode:
    """How one contract field is coded: its LOINC code(s) (first is the profile's), its MDC
    code, its UCUM unit and the display unit, the profile, and a plain name for people."""

    field: str
    loinc: tuple[Code, ...]
    mdc: Code
    ucum: str
    unit: str
    profile: str | None
    name: str


def _loinc(code: str, display: str) -> Code:
    return Code(LOINC, code, display)


def _mdc(code: str, refid: str) -> Code:
    return Code(MDC, code, refid)


VITAL_CODES: dict[str, VitalCode] = {
    c.field: c
    for c in (
        VitalCode(
            "spo2",
            (
                _loinc("2708-6", "Oxygen saturation in Arterial blood"),
                _loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            ),
            _mdc("150456", "MDC_PULS_OXIM_SAT_O2"),
            "%",
            "%",
            "http://hl7.org/fhir/StructureDefinition/oxygensat",
            "SpO2",
        ),
        VitalCode(
            "pulse_rate",
            (_loinc("8867-4", "Heart rate"),),
            _mdc("149530", "MDC_PULS_OXIM_PULS_RATE"),
            "/min",
            "beats/min",
            "http://hl7.org/fhir/StructureDefinition/heartrate",
            "Pulse rate (oximeter)",
        ),
        VitalCode(
            "heart_rate",
            (_loinc("8867-4", "Heart rate"),),
            _mdc("147842", "MDC_ECG_HEART_RATE"),
            "/min",
            "beats/min",
            "http://hl7.org/fhir/StructureDefinition/heartrate",
            "Heart rate (ECG)",
        ),
        VitalCode(
            "resp_rate",
            (_loinc("9279-1", "Respiratory rate"),),
            _mdc("151562", "MDC_RESP_RATE"),
            "/min",
            "breaths/min",
            "http://hl7.org/fhir/StructureDefinition/resprate",
            "Respiratory rate",
        ),
        VitalCode(
            "temp_c",
            (_loinc("8310-5", "Body temperature"),),
            _mdc("150344", "MDC_TEMP"),
            "Cel",
            "C",
            "http://hl7.org/fhir/StructureDefinition/bodytemp",
            "Body temperature",
        ),
        VitalCode(
            "nibp_sys",
            (_loinc("8480-6", "Systolic blood pressure"),),
            _mdc("150021", "MDC_PRESS_BLD_NONINV_SYS"),
            "mm[Hg]",
            "mmHg",
            None,
            "Systolic blood pressure",
        ),
        VitalCode(
            "nibp_dia",
            (_loinc("8462-4", "Diastolic blood pressure"),),
            _mdc("150022", "MDC_PRESS_BLD_NONINV_DIA"),
            "mm[Hg]",
            "mmHg",
            None,
            "Diastolic blood pressure",
        ),
        VitalCode(
            "nibp_mean",
            (_loinc("8478-0", "Mean blood pressure"),),
            _mdc("150023", "MDC_PRESS_BLD_NONINV_MEAN"),
            "mm[Hg]",
            "mmHg",
            None,
            "Mean blood pressure",
        ),
        VitalCode(
            "etco2",
            (
                _loinc(
                    "19891-1",
                    "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration",
                ),
            ),
            _mdc("151712", "MDC_CONC_AWAY_CO2_EXP"),
            "mm[Hg]",
            "mmHg",
            None,
            "End-tidal CO2",
        ),
        VitalCode(
            "pi",
            (_loinc("61006-3", "Perfusion index Tissue by Pulse oximetry"),),
            _mdc("150488", "MDC_BLD_PERF_INDEX"),
            "%",
            "%",
            None,
            "Perfusion index",
        ),
    )
}

BP_PANEL = VitalCode(
    "nibp",
    (_loinc("85354-9", "Blood pressure panel with all children optional"),),
    _mdc("150020", "MDC_PRESS_BLD_NONINV"),
    "mm[Hg]",
    "mmHg",
    "http://hl7.org/fhir/StructureDefinition/bp",
    "Blood pressure",
)
BP_FIELDS = ("nibp_sys", "nibp_dia", "nibp_mean")
# Fields exported one Observation each, in this order (blood pressure is the panel).
SINGLE_FIELDS = ("spo2", "pulse_rate", "heart_rate", "resp_rate", "temp_c", "etco2", "pi")

# Quality flags that make a value unfit for the record. A field's own flag
# (`<field>_<suffix>`), or a reading-wide flag for the oximeter's values.
INVALID_SUFFIXES = ("_invalid", "_invalid_status", "_out_of_range", "_zero", "_unit_unknown")
INVALID_STATUS_PREFIX = "_status_"  # HL7 OBX-11 X/D/W: `<field>_status_x`
OXIMETER_FIELDS = frozenset({"spo2", "pulse_rate", "pi"})
OXIMETER_INVALIDATING = frozenset(
    {
        "sensor_disconnected", "sensor_off", "no_sensor", "defective_sensor", "pulse_search",
        "artifact", "out_of_track", "unrecognized_sensor", "incompatible_sensor", "no_cable",
        "sensor_calibrating",
    }
)  # fmt: skip
# A monitor in demonstration / simulation mode shows made-up numbers: never the patient's.
DEMO_FLAGS = frozenset({"demo", "demo_mode", "simulated", "simulation", "training"})

CALL_CODE = Code(ROOMCTL_CODES, "nurse-call", "Nurse call")
ALERT_CODE = Code(ROOMCTL_CODES, "vital-alert", "Vital-sign alert")
MONITOR_TYPE = Code(ROOMCTL_CODES, "vital-signs-monitor", "Bedside vital-signs monitor")
ROOM_TYPE = Code(ROOMCTL_CODES, "room-controller", "Treatment room controller")
SECONDS = {"system": UCUM, "code": "s", "unit": "s"}
