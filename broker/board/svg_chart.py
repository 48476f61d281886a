"""Server-side SVG line charts for the printable session report (no script needed to print).

Numbers go into the SVG as formatted floats and every label is escaped, so the markup is
safe to embed. Missing values break the line (a gap), never drop to zero.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

W, H = 720, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 24

# chart key, title, unit, y range, series (column, label, css class)
CHARTS: tuple[tuple[str, str, str, tuple[float, float], tuple[tuple[str, str, str], ...]], ...] = (
    ("spo2", "SpO₂", "%", (70, 100), (("spo2", "SpO₂", "s1"),)),
    ("hr", "Heart / pulse rate", "/min", (30, 180), (("hr", "HR", "s1"),)),
    ("nibp", "NIBP", "mmHg", (30, 220), (("nibp_sys", "sys", "s1"), ("nibp_dia", "dia", "s2"))),
    ("rr", "Respiratory rate", "/min", (0, 40), (("resp_rate", "RR", "s1"),)),
)


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _hr(row: dict[str, Any]) -> float | None:
    value = row.get("heart_rate")
    return value if value is not None else row.get("pulse_rate")


def _chart(
    title: str,
    unit: str,
    yr: tuple[float, float],
    xs: list[float],
    series: list[tuple[str, str, list[float | None]]],
    lines: list[dict[str, Any]],
    tz: ZoneInfo,
) -> Markup:
    lo, hi = yr
    values = [v for _, _, col in series for v in col if v is not None]
    if values:
        lo, hi = min(lo, min(values)), max(hi, max(values))
    x0, x1 = (xs[0], xs[-1]) if xs else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        return TOP + (hi - y) / (hi - lo) * (H - TOP - BOTTOM)

    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(title)} ({escape(unit)})" xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" '
        f'height="{H - TOP - BOTTOM}"/>',
    ]
    for i in range(5):
        y = lo + (hi - lo) * i / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{py(y):.1f}" '
            f'y2="{py(y):.1f}"/><text class="tick" x="{LEFT - 4}" y="{py(y) + 4:.1f}" '
            f'text-anchor="end">{y:.0f}</text>'
        )
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        label = datetime.fromtimestamp(x, UTC).astimezone(tz).strftime("%H:%M") if xs else ""
        parts.append(
            f'<text class="tick" x="{px(x):.1f}" y="{H - 6}" '
            f'text-anchor="{("start", "middle", "middle", "middle", "end")[i]}">{label}</text>'
        )
    for t in lines:
        y = py(float(t["threshold"]))
        sign = "&lt;" if t["op"] == "below" else "&gt;"
        parts.append(
            f'<line class="thr thr-{escape(t["severity"])}" x1="{LEFT}" x2="{W - RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/><text class="thr-label" x="{W - RIGHT - 4}" '
            f'y="{y - 3:.1f}" text-anchor="end">{escape(t["name"])} {sign} '
            f"{float(t['threshold']):g} ({escape(t['severity'])})</text>"
        )
    present = sum(1 for _, _, col in series for v in col if v is not None)
    sparse = present < len(xs) * len(series) / 4  # NIBP: a measurement every few minutes
    for _label, cls, col in series:
        segments: list[list[str]] = [[]]
        for x, v in zip(xs, col, strict=True):
            if v is None:
                if segments[-1] and not sparse:
                    segments.append([])
                continue
            segments[-1].append(f"{px(x):.1f},{py(v):.1f}")
            if sparse:
                parts.append(f'<circle class="dot {escape(cls)}" cx="{px(x):.1f}" '
                             f'cy="{py(v):.1f}" r="2.5"/>')  # fmt: skip
        for seg in segments:
            if seg:
                parts.append(f'<polyline class="line {escape(cls)}" points="{" ".join(seg)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def session_charts(
    rows: list[dict[str, Any]], thresholds: list[dict[str, Any]], tz: ZoneInfo
) -> list[dict[str, Any]]:
    """The report's charts; the time axis in the site's zone `tz` (24-hour)."""
    xs = [_epoch(r["ts"]) for r in rows]
    out = []
    for key, title, unit, yr, series_def in CHARTS:
        series = []
        for col, label, cls in series_def:
            values = [_hr(r) if col == "hr" else r.get(col) for r in rows]
            series.append((label, cls, values))
        lines = [t for t in thresholds if t["chart"] == key]
        out.append(
            {
                "key": key,
                "title": title,
                "unit": unit,
                "legend": [label for label, _, _ in series],
                "svg": _chart(
                    title, unit, yr, xs, [(lbl, cls, v) for lbl, cls, v in series], lines, tz
                ),
            }
        )
    return out
