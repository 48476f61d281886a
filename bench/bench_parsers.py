"""Monitor parser throughput, against a baseline measured in the same run.

    python -m bench.bench_parsers [--quick]

For each protocol the input is a stream the simulators would send (the ketamine trace,
encoded), fed in 256-byte chunks as a serial read would deliver it. Baselines:
  masimo     bytes.splitlines() and a split of each line into tokens (no checks)
  nonin-*    slicing the stream into 5-byte frames and summing each (the checksum alone)
  hl7        the `hl7` library's `hl7.parse()` of the same messages, nothing else
The ratio is parser rate / baseline rate. "CPU at device rate" is the share of one core
the parser needs for a real monitor (Masimo 1 record/s, Nonin 3 packets/s, HL7 1 message
/s); the target is under 0.1 %. Times are CPU time (`time.process_time`), best of 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import hl7

from firmware_py.monitors import device_encoders as enc
from firmware_py.monitors.mllp import mllp_frame
from firmware_py.monitors.parsers import make_parser
from firmware_py.monitors.session_trace import KetamineTrace

DEVICE_RATE = {"masimo": 1.0, "nonin-df2": 3.0, "nonin-df7": 3.0, "hl7": 1.0}
CPU_TARGET_PCT = 0.1
CHUNK = 256


def make_input(protocol: str, count: int) -> tuple[bytes, list[bytes]]:
    """(stream bytes, the individual records/messages) for `count` readings."""
    trace = KetamineTrace(seed=1, desat=True)
    records: list[bytes] = []
    for i in range(count):
        point = trace.at(i * 2.0)
        if protocol == "masimo":
            records.append(enc.masimo_line(point, 1_764_057_600 + i))
        elif protocol.startswith("nonin"):
            records.append(enc.nonin_packet(protocol[-3:], point, i * 25))
        else:
            records.append(enc.hl7_oru(point, f"B{i:08d}", 1_764_057_600 + i))
    if protocol == "hl7":
        return b"".join(mllp_frame(r) for r in records), records
    return b"".join(records), records


def best_cpu_seconds(fn: Callable[[], int], repeat: int = 3) -> tuple[float, int]:
    """Smallest CPU time of `repeat` runs of fn, and fn's result (items processed)."""
    best, items = float("inf"), 0
    for _ in range(repeat):
        start = time.process_time()
        items = fn()
        best = min(best, time.process_time() - start)
    return max(best, 1e-9), items


def run_parser(protocol: str, stream: bytes) -> int:
    parser = make_parser(protocol, clock=lambda: 0.0)
    count = 0
    for i in range(0, len(stream), CHUNK):
        parser.feed(stream[i : i + CHUNK])
        for _ in parser.readings():
            count += 1
        for _ in parser.acks():
            pass
    return count


def run_baseline(protocol: str, stream: bytes, records: list[bytes]) -> int:
    if protocol == "masimo":
        return sum(1 for line in stream.splitlines() if line.split(b" "))
    if protocol.startswith("nonin"):
        frames = 0
        for i in range(0, len(stream) - 4, 5):
            frames += sum(stream[i : i + 4]) & 0xFF == stream[i + 4]
        return frames // 25
    return sum(1 for r in records if hl7.parse(r.decode()))


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure every parser; rows of {name, value, unit, baseline, ratio, target}."""
    counts = {"masimo": 3000, "nonin-df2": 1500, "nonin-df7": 1500, "hl7": 1000}
    rows: list[dict[str, Any]] = []
    for protocol, count in counts.items():
        n = max(50, count // 10) if quick else count
        stream, records = make_input(protocol, n)
        p_cpu, p_items = best_cpu_seconds(lambda p=protocol, s=stream: run_parser(p, s))
        b_cpu, b_items = best_cpu_seconds(
            lambda p=protocol, s=stream, r=records: run_baseline(p, s, r)
        )
        if p_items != n:
            raise RuntimeError(f"{protocol}: parsed {p_items} readings of {n}")
        rate, base_rate = p_items / p_cpu, b_items / b_cpu
        device = DEVICE_RATE[protocol]
        rows.append({
            "name": f"{protocol} readings/s",
            "value": round(rate, 1),
            "unit": "readings/s",
            "baseline": round(base_rate, 1),
            "ratio": round(rate / base_rate, 3),
            "target": device * 100.0 / CPU_TARGET_PCT,  # the rate that costs 0.1 % of a core
        })
        cpu_pct = device / rate * 100.0
        base_pct = device / base_rate * 100.0
        rows.append({
            "name": f"{protocol} CPU at device rate ({device:g}/s)",
            "value": round(cpu_pct, 5),
            "unit": "% of one core",
            "baseline": round(base_pct, 5),
            "ratio": round(cpu_pct / base_pct, 3),
            "target": CPU_TARGET_PCT,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_parsers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the input")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(f"{'measure':<42} {'value':>12} {'baseline':>12} {'ratio':>7} {'target':>10}  unit")
    for r in rows:
        flag = ""
        if r["unit"].startswith("%"):
            flag = "  ok" if r["value"] < r["target"] else "  OVER TARGET"
        print(f"{r['name']:<42} {r['value']:>12g} {r['baseline']:>12g} {r['ratio']:>7g} "
              f"{r['target']:>10g}  {r['unit']}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
