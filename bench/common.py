"""Shared by the benchmarks: result rows, percentiles, the machine they ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def row(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    target: str,
    *,
    ratio: float | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One result: the value, the baseline measured in the same run, their ratio, the target."""
    if ratio is None and baseline:
        ratio = value / baseline
    return {
        "name": name,
        "value": round(value, 4),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "note": note,
    }


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def subscribed_client(port: int, topic: str, client_id: str, on_message: Any) -> Any:
    """A paho MQTT 5 client on 127.0.0.1:port, subscribed to topic (QoS 1), network loop running."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    ready = threading.Event()
    client.on_subscribe = lambda *a: ready.set()
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not ready.wait(10):
        raise RuntimeError(f"subscribe to {topic} timed out")
    return client
