"""Board latency: an MQTT message to the change in the page, at 50 rooms publishing 1 Hz vitals.

    python -m bench.bench_board [--quick]

Set-up, all on this machine (loopback): a Mosquitto from the project's config, the board
(`broker.board`, `--no-auth` on 127.0.0.1) under uvicorn, headless Debian Chromium (through
Playwright) showing the overview, one paho publisher playing 50 rooms (each room one vitals
reading per second, the rooms spread evenly over the second, QoS 1, as rooms publish), and a
plain paho subscriber to the same topics: the baseline.

Latency of a message = when it was seen minus when `publish()` was called (one wall clock,
one machine). In the page a MutationObserver notes when a tile's `data-vitals-seq` takes the
message's seq (set in the same task that writes the numbers into the tile); the paint that
follows is at most one frame later and is not included. The baseline is the same messages'
latency to the plain subscriber in the same run. Target: board p99 under 500 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import sync_playwright

from broker.board.app import Board, BoardConfig
from broker.mosquitto.run import Mosquitto, free_port
from contract import messages, topics
from contract.mqtt import BrokerEndpoint, close_client

SITE = "bench"
ROOMS = 50
RATE_HZ = 1.0
TARGET_P99_MS = 500.0
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

OBSERVER_JS = """
() => {
  window.__seen = [];
  const obs = new MutationObserver((records) => {
    const t = performance.timeOrigin + performance.now();
    for (const r of records) {
      const node = r.target;
      if (node.dataset && node.dataset.vitalsSeq) {
        window.__seen.push([node.dataset.room, Number(node.dataset.vitalsSeq), t]);
      }
    }
  });
  obs.observe(document.getElementById("tiles"),
              { attributes: true, subtree: true, attributeFilter: ["data-vitals-seq"] });
}
"""


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class Baseline:
    """A plain paho subscriber: when each (room, seq) arrived."""

    def __init__(self, url: str):
        endpoint = BrokerEndpoint.from_url(url)
        self.seen: dict[tuple[str, int], float] = {}
        self.ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"base-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, *a: c.subscribe(f"clinic/{SITE}/room/+/vitals", 1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        t = time.time()
        parts = msg.topic.split("/")
        # the seq is in the payload; a cheap scan keeps the baseline a plain subscriber
        payload = bytes(msg.payload)
        start = payload.index(b'"seq":') + 6
        end = payload.index(b",", start)
        self.seen[(parts[3], int(payload[start:end]))] = t

    def stop(self) -> None:
        self.client.disconnect()
        close_client(self.client)


def _publisher(url: str) -> mqtt.Client:
    endpoint = BrokerEndpoint.from_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rooms-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.max_inflight_messages_set(1000)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    return client


def _vitals(room: str, seq: int) -> bytes:
    msg = messages.VitalsMessage(
        site=SITE, room=room, epoch="0000000000000001", seq=seq, ts=datetime.now(UTC),
        clock_synced=True,
        spo2=95 + seq % 5, pulse_rate=70 + seq % 20, nibp_sys=120, nibp_dia=80,
        resp_rate=14, protocol="bench",
    )  # fmt: skip
    return msg.model_dump_json().encode()


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure; rows of {name, value, unit, baseline, ratio, target}."""
    measure_s = 10.0 if quick else 40.0
    warmup_s = 3.0
    rooms = [f"r{i:02d}" for i in range(1, ROOMS + 1)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-board-") as tmp,
        Mosquitto(Path(tmp) / "mq") as mq,
    ):
        port = free_port()
        board = Board(BoardConfig(site=SITE, endpoint=BrokerEndpoint.from_url(mq.url),
                                  logger_db=None, board_db=Path(tmp) / "board.sqlite",
                                  no_auth=True))  # fmt: skip
        config = uvicorn.Config(board.app, host="127.0.0.1", port=port, log_level="warning",
                                timeout_graceful_shutdown=1)  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        if not board.feed.wait_subscribed(15):
            raise RuntimeError("the board did not subscribe")
        base = Baseline(mq.url)
        if not base.ready.wait(10):
            raise RuntimeError("the baseline subscriber did not subscribe")
        pub = _publisher(mq.url)
        sent: dict[tuple[str, int], float] = {}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                            args=CHROMIUM_ARGS)  # fmt: skip
                # the harness's own probes are evaluated scripts: the page's CSP would refuse them
                page = browser.new_page(viewport={"width": 1600, "height": 1000}, bypass_csp=True)
                # rooms exist (retained availability) before the page opens
                for room in rooms:
                    pub.publish(topics.availability(SITE, room), "online", qos=1, retain=True)
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function(f"document.querySelectorAll('.tile').length === {ROOMS}",
                                       timeout=20_000)  # fmt: skip
                page.evaluate(OBSERVER_JS)
                interval = 1.0 / (RATE_HZ * ROOMS)
                total = int((warmup_s + measure_s) * RATE_HZ * ROOMS)
                measure_from = int(warmup_s * RATE_HZ * ROOMS)
                start = time.monotonic()
                for i in range(total):
                    room, seq = rooms[i % ROOMS], i // ROOMS + 1
                    payload = _vitals(room, seq)
                    delay = start + i * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing the publisher, not waiting on a result
                    if i >= measure_from:
                        sent[(room, seq)] = time.time()
                    pub.publish(topics.vitals(SITE, room), payload, qos=1)
                # let the last messages arrive (bounded), then read the page's notes
                page.wait_for_function(
                    f"window.__seen.some(e => e[0] === '{rooms[(total - 1) % ROOMS]}' "
                    f"&& e[1] === {(total - 1) // ROOMS + 1})", timeout=10_000,
                )  # fmt: skip
                seen = page.evaluate("window.__seen")
                browser.close()
        finally:
            pub.disconnect()
            close_client(pub)
            base.stop()
            server.should_exit = True
            thread.join(10)
    dom: dict[tuple[str, int], float] = {}
    for room, seq, t_ms in seen:
        dom.setdefault((room, int(seq)), t_ms / 1000.0)
    board_ms = [(dom[k] - t) * 1000 for k, t in sent.items() if k in dom]
    base_ms = [(base.seen[k] - t) * 1000 for k, t in sent.items() if k in base.seen]
    missing = sum(1 for k in sent if k not in dom)
    rows: list[dict[str, Any]] = []
    for q in (50, 99):
        value, ref = _pct(board_ms, q), _pct(base_ms, q)
        rows.append({
            "name": f"MQTT -> page p{q} ({ROOMS} rooms x {RATE_HZ:g} Hz)",
            "value": round(value, 2),
            "unit": "ms",
            "baseline": round(ref, 2),
            "ratio": round(value / ref, 1) if ref > 0 else float("inf"),
            "target": TARGET_P99_MS if q == 99 else float("nan"),
        })  # fmt: skip
    rows.append({
        "name": "MQTT -> page max",
        "value": round(max(board_ms, default=float("nan")), 2),
        "unit": "ms",
        "baseline": round(max(base_ms, default=float("nan")), 2),
        "ratio": round(max(board_ms) / max(base_ms), 1) if board_ms and base_ms else float("nan"),
        "target": float("nan"),
    })  # fmt: skip
    rows.append({
        "name": "readings not shown in the page",
        "value": missing,
        "unit": f"of {len(sent)}",
        "baseline": len(sent) - len(base_ms),
        "ratio": float("nan"),
        "target": 0,
    })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_board",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="10 s of measurement instead of 40")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(f"{'measure':<44} {'value':>10} {'baseline':>10} {'ratio':>7} {'target':>8}  unit")
    for r in rows:
        flag = ""
        if "p99" in r["name"]:
            flag = "  ok" if r["value"] < r["target"] else "  OVER TARGET"
        print(f"{r['name']:<44} {r['value']:>10g} {r['baseline']:>10g} {r['ratio']:>7g} "
              f"{r['target']:>8g}  {r['unit']}{flag}")  # fmt: skip
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
