"""Which OBX rows of an IHE PCD-01 message are which vital, and in what unit.

OBX-3 is `code^MDC_REFID^MDC` (IEEE 11073-10101 nomenclature). A row is matched by its
numeric code, then by its MDC reference id, then (for v2.3.1 feeds with free-text labels,
e.g. Mindray) by a short list of plain labels. OBX-6 units may be MDC (`266016^MDC_DIM_MMHG`),
UCUM (`mm[Hg]`, `Cel`, `[degF]`, `/min`) or plain text (`mmHg`, `%`, `bpm`); each is
mapped to a canonical unit and converted to the contract's unit (Fahrenheit and kPa
converted; an unknown unit makes the value None with a flag rather than a guess).

Codes: protocols/monitor-protocols.md section 2 (GE B40 manual, Philips, Mindray, Comen
samples), plus both NIBP families (`MDC_PRESS_BLD_NONINV_*` and `MDC_PRESS_CUFF_*`).
"""

from __future__ import annotations

CODE_TO_FIELD: dict[str, str] = {
    "150456": "spo2",
    "149530": "pulse_rate",
    "149522": "pulse_rate",
    "147842": "heart_rate",
    "150021": "nibp_sys",
    "150022": "nibp_dia",
    "150023": "nibp_mean",
    "150301": "nibp_sys",
    "150302": "nibp_dia",
    "150303": "nibp_mean",
    "151562": "resp_rate",
    "151578": "resp_rate",
    "151712": "etco2",
    "150344": "temp_c",
    "150488": "pi",
    "150458": "pi",
}
REFID_TO_FIELD: dict[str, str] = {
    "MDC_PULS_OXIM_SAT_O2": "spo2",
    "MDC_PULS_OXIM_PULS_RATE": "pulse_rate",
    "MDC_PULS_RATE": "pulse_rate",
    "MDC_BLD_PULS_RATE_INV": "pulse_rate",
    "MDC_ECG_HEART_RATE": "heart_rate",
    "MDC_ECG_CARD_BEAT_RATE": "heart_rate",
    "MDC_PRESS_BLD_NONINV_SYS": "nibp_sys",
    "MDC_PRESS_BLD_NONINV_DIA": "nibp_dia",
    "MDC_PRESS_BLD_NONINV_MEAN": "nibp_mean",
    "MDC_PRESS_CUFF_SYS": "nibp_sys",
    "MDC_PRESS_CUFF_DIA": "nibp_dia",
    "MDC_PRESS_CUFF_MEAN": "nibp_mean",
    "MDC_RESP_RATE": "resp_rate",
    "MDC_TTHOR_RESP_RATE": "resp_rate",
    "MDC_AWAY_RESP_RATE": "resp_rate",
    "MDC_CONC_AWAY_CO2_EXP": "etco2",
    "MDC_CONC_AWAY_CO2_ET": "etco2",
    "MDC_TEMP": "temp_c",
    "MDC_TEMP_BODY": "temp_c",
    "MDC_BLD_PERF_INDEX": "pi",
}
# Free-text labels (v2.3.1 feeds), compared upper-case without spaces, `_`, `-` or `.`.
LABEL_TO_FIELD: dict[str, str] = {
    "SPO2": "spo2",
    "PR": "pulse_rate",
    "PULSERATE": "pulse_rate",
    "HR": "heart_rate",
    "HEARTRATE": "heart_rate",
    "NIBPSYS": "nibp_sys",
    "NIBPS": "nibp_sys",
    "NIBPDIA": "nibp_dia",
    "NIBPD": "nibp_dia",
    "NIBPMEAN": "nibp_mean",
    "NIBPM": "nibp_mean",
    "RR": "resp_rate",
    "RESP": "resp_rate",
    "ETCO2": "etco2",
    "TEMP": "temp_c",
    "T1": "temp_c",
    "PI": "pi",
}

# Canonical units: "%", "/min", "mmHg", "kPa", "degC", "degF", "1" (dimensionless).
UNIT_ALIASES: dict[str, str] = {
    "262688": "%",
    "MDC_DIM_PERCENT": "%",
    "%": "%",
    "262656": "1",
    "MDC_DIM_DIMLESS": "1",
    "264864": "/min",
    "MDC_DIM_BEAT_PER_MIN": "/min",
    "264928": "/min",
    "MDC_DIM_RESP_PER_MIN": "/min",
    "/MIN": "/min",
    "1/MIN": "/min",
    "{BEATS}/MIN": "/min",
    "{BEAT}/MIN": "/min",
    "{BREATHS}/MIN": "/min",
    "{RESP}/MIN": "/min",
    "BPM": "/min",
    "RPM": "/min",
    "BRPM": "/min",
    "266016": "mmHg",
    "MDC_DIM_MMHG": "mmHg",
    "MM[HG]": "mmHg",
    "MMHG": "mmHg",
    "265987": "kPa",
    "MDC_DIM_KILO_PASCAL": "kPa",
    "KPA": "kPa",
    "268192": "degC",
    "MDC_DIM_DEGC": "degC",
    "CEL": "degC",
    "DEGC": "degC",
    "°C": "degC",
    "C": "degC",
    "266560": "degF",
    "MDC_DIM_FAHR": "degF",
    "[DEGF]": "degF",
    "DEGF": "degF",
    "°F": "degF",
    "F": "degF",
}
ACCEPTED_UNITS: dict[str, tuple[str, ...]] = {
    "spo2": ("%",),
    "pulse_rate": ("/min",),
    "heart_rate": ("/min",),
    "pi": ("%", "1"),
    "nibp_sys": ("mmHg", "kPa"),
    "nibp_dia": ("mmHg", "kPa"),
    "nibp_mean": ("mmHg", "kPa"),
    "resp_rate": ("/min",),
    "etco2": ("mmHg", "kPa"),
    "temp_c": ("degC", "degF"),
}
MMHG_PER_KPA = 7.500615758


def field_for(code: str, refid: str) -> str | None:
    """The vitals field an OBX-3 (`code`, `refid` = components 1 and 2) stands for."""
    field = CODE_TO_FIELD.get(code.strip())
    if field is None:
        field = REFID_TO_FIELD.get(refid.strip().upper())
    if field is None:
        for text in (refid, code):
            label = text.upper().replace(" ", "").replace("_", "").replace("-", "")
            field = LABEL_TO_FIELD.get(label.replace(".", ""))
            if field is not None:
                break
    return field


def canonical_unit(components: list[str]) -> str | None:
    """The canonical unit for the components of OBX-6; "" when blank, None if unknown."""
    if not any(c.strip() for c in components):
        return ""
    for text in components[:2]:
        unit = UNIT_ALIASES.get(text.strip().upper())
        if unit is not None:
            return unit
    return None


def convert(field: str, value: float, unit: str) -> float | None:
    """`value` in `unit` to the contract unit of `field`; None if the unit does not fit."""
    if unit == "":
        return value
    if unit not in ACCEPTED_UNITS[field]:
        return None
    if unit == "degF":
        return round((value - 32.0) * 5.0 / 9.0, 2)
    if unit == "kPa":
        return round(value * MMHG_PER_KPA, 1)
    return value
