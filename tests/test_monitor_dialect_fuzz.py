"""Property tests per HL7 dialect (issue 18): no message makes the parser raise, every
reading is publishable, and no vendor "no value" marker ever comes out as a number."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.vitals import VITAL_NAMES
from firmware_py.monitors.dialect import DIALECTS, load_dialect
from firmware_py.monitors.hl7_pcd01 import Hl7Parser
from firmware_py.monitors.mllp import mllp_frame
from tests.support.monitor_fixtures import as_message, fixed_clock, fixture_files, load

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HL7_FIXTURES = [load(p) for p in fixture_files() if p.parent.name == "hl7"]
TABLES = {name: load_dialect(name) for name in DIALECTS}
HEADERS = {
    "mdc": "MSH|^~\\&|GW|GW|||20261125090000||ORU^R01|1|{p}|2.6",
    "mindray-legacy": "MSH|^~\\&|||||||ORU^R01|{c}|{p}|2.3.1|",
    "nihon-kohden": "MSH|^~\\&|NIHON KOHDEN|NIHON KOHDEN|||20261125090000||ORU^R01|2|{p}|2.4",
    "comen": "MSH|^~\\&|COMEN^NC12|COMEN|||20261125090000||ORU^R01|3|{p}|2.6",
}


def check(parser: Hl7Parser) -> None:
    for reading in parser.readings():
        message = as_message(reading)  # raises if anything breaks the contract
        for name in VITAL_NAMES:
            value = getattr(message, name)
            assert value is None or value not in (-100.0, 8388607.0, -999.0)
    assert all(a.startswith(b"\x0b") for a in parser.acks())


@st.composite
def obx_rows(draw: st.DrawFn, dialect: str) -> str:
    table = TABLES[dialect]
    codes = sorted(table.codes)
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        code = draw(st.sampled_from([*codes, "0", "999999", ""]))
        name = draw(st.sampled_from(["", "HR", "SpO2", "MDC_TEMP_AXIL", "NIBP SYS", "Sys", "x"]))
        value = draw(st.one_of(
            st.sampled_from(["-100", "-100.00", "8388607", "0", "", "NaN", "abc", "37.2"]),
            st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: f"{f:.2f}"),
        ))
        unit = draw(st.sampled_from(["", "%", "mmHg", "bpm", "kPa", "[degF]", "parsec"]))
        flags = draw(st.sampled_from(["", "L", "H", "NAV", "A~PH~SP", "NAN"]))
        status = draw(st.sampled_from(["F", "R", "X", "C", "", "W"]))
        times = ["", "00000000000000", "20261125085959", "20261125091500+0000"]
        when = draw(st.sampled_from(times))
        obr = draw(st.booleans())
        if obr:
            rows.append(f"OBR|1|||G|||{when}")
        rows.append(f"OBX||NM|{code}^{name}|2105|{value}|{unit}||{flags}|||{status}|||{when}")
    return "\r".join(rows)


@FUZZ
@given(
    dialect=st.sampled_from(DIALECTS),
    processing=st.sampled_from(["P", "T", "D", ""]),
    control=st.sampled_from(["204", "503", "54", "56", "205", "7"]),
    data=st.data(),
)
def test_generated_messages_per_dialect(
    dialect: str, processing: str, control: str, data: st.DataObject
) -> None:
    header = HEADERS[dialect].format(p=processing, c=control)
    body = header + "\r" + data.draw(obx_rows(dialect)) + "\r"
    for fixed in ("auto", dialect):
        parser = Hl7Parser(fixed_clock, dialect=fixed)
        parser.feed(mllp_frame(body.encode()))
        assert parser.frames_accepted + parser.frames_rejected == 1
        check(parser)


@FUZZ
@given(dialect=st.sampled_from(DIALECTS), data=st.data())
def test_mangled_fixtures_per_dialect(dialect: str, data: st.DataObject) -> None:
    pieces = data.draw(st.lists(st.sampled_from(HL7_FIXTURES), min_size=1, max_size=3))
    blob = bytearray(b"".join(pieces))
    for _ in range(data.draw(st.integers(0, 8))):
        pos = data.draw(st.integers(0, max(0, len(blob) - 1)))
        blob[pos:pos + 1] = data.draw(st.binary(max_size=4))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=6)))
    parser = Hl7Parser(fixed_clock, dialect=dialect)
    for a, b in itertools.pairwise([0, *cuts, len(blob)]):
        parser.feed(bytes(blob[a:b]))
        check(parser)
