"""Logger ingest rate against the raw broker rate, measured in the same run.

    python -m bench.bench_logger [--quick]

One Mosquitto from the generated TLS config (`roomctl broker config`), one publisher process
with several rooms (QoS 1, contract-valid vitals/events, a window of un-acked messages per
room). Two phases, same broker, same publisher, same message count:
  raw     a plain paho subscriber (auto-ack, no parsing) receives every message; the rate is
          messages / (last message received - publisher start)
  logger  the real logger (validation, SQLite WAL, synchronous=FULL, manual ack after commit);
          the rate is messages / (last row committed - publisher start)
The ratio is logger / raw (target >= 0.8) and every (room, seq) must be in the database once.
The phases alternate (2 rounds with --quick, else 3) and the best rate of each is kept: the
broker, the publisher and the consumer share this host's cores, so single runs are noisy.
The publisher runs in its own process so it does not share a GIL with either consumer.
"CPU per message" is the consumer process's CPU time per message (logger vs raw subscriber):
unlike the rates it barely moves when other work shares the host.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from broker.logger.config import LoggerConfig
from broker.logger.service import Logger
from broker.logger.store import open_store
from broker.mosquitto.conf import BrokerSettings, current_user, write_config
from broker.mosquitto.pki import Identity, Pki
from broker.mosquitto.run import Mosquitto, free_port
from contract import messages, topics
from contract.mqtt import BrokerEndpoint, close_client, make_client

SITE = "bench"
TARGET_RATIO = 0.8


def _endpoint(pki: Pki, url: str, cn: str) -> BrokerEndpoint:
    ident = Identity.from_cn(cn)
    assert ident is not None
    cert, key = pki.client_paths(ident)
    return BrokerEndpoint.from_url(url, ca=pki.ca_cert, cert=cert, key=key)


# -- the publisher process -----------------------------------------------------------------
def publisher_main(args: argparse.Namespace) -> int:
    """Connect every room, print `go`, publish `count` messages per room from `start`, wait acks."""
    pki = Pki(args.pki)
    clients: list[mqtt.Client] = []
    for room in args.rooms.split(","):
        client = make_client(_endpoint(pki, args.url, f"room-{room}"), f"bench-{room}")
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(args.window)
        connected = threading.Event()
        client.on_connect = lambda c, u, f, rc, p=None, e=connected: e.set()
        ep = _endpoint(pki, args.url, f"room-{room}")
        client.connect(ep.host, ep.port)
        client.loop_start()
        if not connected.wait(10):
            raise TimeoutError(f"room {room} could not connect")
        clients.append(client)
    rooms = args.rooms.split(",")
    payloads: list[list[tuple[str, bytes]]] = []
    now = datetime.now(UTC)
    for room in rooms:
        batch = []
        for seq in range(args.start, args.start + args.count):
            if seq % 10 == 0:
                msg: messages.Envelope = messages.EventMessage(
                    site=SITE,
                    room=room,
                    epoch="0000000000000001",
                    seq=seq,
                    ts=now,
                    clock_synced=True,
                    kind=messages.EventKind.SCENE_CHANGED,
                )
                batch.append((topics.events(SITE, room), msg.model_dump_json().encode()))
            else:
                msg = messages.VitalsMessage(
                    site=SITE,
                    room=room,
                    epoch="0000000000000001",
                    seq=seq,
                    ts=now,
                    clock_synced=True,
                    spo2=97,
                    pulse_rate=70 + seq % 20,
                    protocol="masimo",
                )
                batch.append((topics.vitals(SITE, room), msg.model_dump_json().encode()))
        payloads.append(batch)
    print("go", flush=True)

    def pump(client: mqtt.Client, batch: list[tuple[str, bytes]]) -> None:
        infos = []
        for i, (topic, data) in enumerate(batch):
            infos.append(client.publish(topic, data, qos=1))
            if i >= args.window:
                infos[i - args.window].wait_for_publish(60)
        for info in infos:
            info.wait_for_publish(60)

    threads = [
        threading.Thread(target=pump, args=(c, b)) for c, b in zip(clients, payloads, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.disconnect()
        close_client(c)
    print("done", flush=True)
    return 0


# -- the bench -----------------------------------------------------------------------------
class _Publisher:
    def __init__(self, pki: Pki, url: str, rooms: list[str], start: int, count: int):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bench_logger",
                "--publisher",
                "--pki",
                str(pki.root),
                "--url",
                url,
                "--rooms",
                ",".join(rooms),
                "--start",
                str(start),
                "--count",
                str(count),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "go":
            raise RuntimeError(f"publisher did not start: {line!r}")
        self.t0 = time.perf_counter()

    def wait(self) -> None:
        assert self.proc.stdout is not None
        self.proc.stdout.read()
        if self.proc.wait(120) != 0:
            raise RuntimeError("publisher failed")


def _raw_phase(pki: Pki, url: str, rooms: list[str], count: int) -> tuple[float, float]:
    total = count * len(rooms)
    received = 0
    done = threading.Event()
    subscribed = threading.Event()
    last = [0.0]

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= total:
            last[0] = time.perf_counter()
            done.set()

    client = make_client(_endpoint(pki, url, "staff-bench"), f"raw-{uuid.uuid4().hex[:6]}")
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topics.all_rooms_filter(SITE), 1)
    client.on_subscribe = lambda *a, **k: subscribed.set()
    ep = _endpoint(pki, url, "staff-bench")
    client.connect(ep.host, ep.port)
    client.loop_start()
    if not subscribed.wait(10):
        raise TimeoutError("raw subscriber did not subscribe")
    pub = _Publisher(pki, url, rooms, 1, count)
    cpu0 = time.process_time()
    if not done.wait(300):
        raise TimeoutError(f"raw subscriber got {received} of {total}")
    pub.wait()
    client.disconnect()
    close_client(client)
    cpu = time.process_time() - cpu0
    return total / (last[0] - pub.t0), cpu * 1e6 / total


def _logger_phase(
    pki: Pki, url: str, rooms: list[str], count: int, db: Path, name: str, **overrides: Any
) -> tuple[float, int, float]:
    """A logger of its own name (certificate `logger-<name>`): the broker makes the client id
    the certificate's name, so a logger of an earlier round would resume its session and
    receive the raw phase's messages too (they were counted as 'lost or duplicated')."""
    cert, key = pki.client_paths(Identity("logger", name))
    cfg = LoggerConfig.model_validate(
        dict(broker=url, ca=pki.ca_cert, cert=cert, key=key, db=db, site=SITE, **overrides)
    )
    logger = Logger(cfg).start()
    try:
        if not logger.subscribed.wait(10):
            raise TimeoutError("logger did not subscribe")
        total = count * len(rooms)
        start = count + 1  # new seqs: the raw phase used 1..count
        pub = _Publisher(pki, url, rooms, start, count)
        cpu0 = time.process_time()
        if not logger.wait_committed(lambda t: t.inserted >= total, 300):
            raise TimeoutError(f"logger committed {logger.totals.inserted} of {total}")
        rate = total / (time.perf_counter() - pub.t0)
        cpu = time.process_time() - cpu0
        pub.wait()
    finally:
        logger.stop()
    store = open_store(db, readonly=True)
    missing = 0
    for room in rooms:
        got = store.stored_seqs(SITE, room)
        expected = list(range(start, start + count))
        missing += len(set(expected) - got) + abs(len(got) - len(expected))
    store.close()
    return rate, missing, cpu * 1e6 / total


def run(quick: bool) -> list[dict[str, Any]]:
    """Both phases; rows of {name, value, unit, baseline, ratio, target}."""
    rooms = [f"r{i}" for i in range(1, 5)]
    count = 1500 if quick else 10000
    rounds = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-logger-") as tmp:
        root = Path(tmp)
        pki = Pki.init(root / "pki", SITE)
        for room in rooms:
            pki.issue("room", room)
        pki.issue("staff", "bench")
        for n in range(rounds):
            pki.issue("logger", f"round{n}")
        port = free_port()
        state = root / "broker"
        state.mkdir()
        settings = BrokerSettings(
            site=SITE,
            pki_dir=pki.root,
            tls_port=port,
            bind="127.0.0.1",
            state_dir=state,
            log_file=state / "mosquitto.log",
            run_as=current_user(),
        )
        conf, _ = write_config(settings, root / "mosquitto.conf")
        url = f"mqtts://127.0.0.1:{port}"
        raws: list[float] = []
        raw_cpus: list[float] = []
        cpus: list[float] = []
        rates: list[float] = []
        missing = 0
        with Mosquitto(state, port=port, config_text=conf.read_text()):
            for n in range(rounds):  # alternate the phases; best of each (the host is shared)
                raw_rate, raw_cpu = _raw_phase(pki, url, rooms, count)
                raws.append(raw_rate)
                raw_cpus.append(raw_cpu)
                rate, lost, cpu = _logger_phase(
                    pki, url, rooms, count, root / f"log-{n}.db", f"round{n}"
                )
                rates.append(rate)
                cpus.append(cpu)
                missing += lost
    raw, rate = max(raws), max(rates)
    raw_cpu, cpu = min(raw_cpus), min(cpus)
    total = count * len(rooms) * rounds
    return [
        {
            "name": "raw subscriber msgs/s",
            "value": round(raw, 1),
            "unit": "msg/s",
            "baseline": round(raw, 1),
            "ratio": 1.0,
            "target": None,
        },
        {
            "name": "logger committed msgs/s (FULL)",
            "value": round(rate, 1),
            "unit": "msg/s",
            "baseline": round(raw, 1),
            "ratio": round(rate / raw, 3),
            "target": TARGET_RATIO,
        },
        {
            "name": "logger CPU per message",
            "value": round(cpu, 1),
            "unit": "us CPU/msg",
            "baseline": round(raw_cpu, 1),
            "ratio": round(cpu / raw_cpu, 3),
            "target": None,
        },
        {
            "name": f"logger lost or duplicated of {total}",
            "value": missing,
            "unit": "msgs",
            "baseline": 0,
            "ratio": 0.0 if missing == 0 else 1.0,
            "target": 0,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_logger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rooms", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publisher:
        return publisher_main(args)
    rows = run(args.quick)
    print(f"{'measure':<40} {'value':>10} {'baseline':>10} {'ratio':>7} {'target':>7}  unit")
    for r in rows:
        target = "-" if r["target"] is None else f"{r['target']:g}"
        print(
            f"{r['name']:<40} {r['value']:>10g} {r['baseline']:>10g} {r['ratio']:>7g} "
            f"{target:>7}  {r['unit']}"
        )
    print(json.dumps({"logger_ratio": rows[1]["ratio"], "lost": rows[-1]["value"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
