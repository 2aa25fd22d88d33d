"""Benchmark of the robot-side bridges; writes benchmarks/results/bridges.md.

Figure: **gesture -> MQTT subscriber and gesture -> DDS subscriber latency** (p50/p99), against a direct
ZeroMQ subscriber on the daemon's output in the same run. One process (this one) holds all three
subscribers and stamps each gesture on arrival with the same monotonic clock:

* the reference: a ZeroMQ SUB on the daemon's output (what ``s2gesture listen`` or a robot does);
* ``s2gesture mqtt`` (a real process) -> a real mosquitto on loopback -> a paho subscriber (QoS 1);
* ``s2gesture ros2`` (a real process) -> Cyclone DDS on loopback -> a DDS reader of the typed
  ``s2gesture_msgs/Gesture`` topic (reliable, keep-last).

The daemon (lossless, the tests' tiny model with an eager decision policy so that onsets come often) gets
recordings replayed in real time; every gesture must arrive on all three paths (counted). The added
latency of a bridge is its arrival time minus the reference's for the same gesture.

Usage: python benchmarks/bench_bridges.py [--recordings 24]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bridge_helpers import (  # noqa: E402
    CYCLONEDDS_LOOPBACK,
    DdsSubscriber,
    Reference,
    Subscriber,
    bridge_process,
    start_broker,
    stop_process,
)
from daemon_helpers import random_events, start_daemon  # noqa: E402

from s2gesture.clients import replay  # noqa: E402
from s2gesture.daemon.events import Recording  # noqa: E402
from s2gesture.daemon.testing import write_tiny_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bridges.md"
STREAM = "bench"
EAGER = {"S2G_DECISION__ONSET_CONFIDENCE": "0.05", "S2G_DECISION__MIN_CHUNKS": "1"}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=24, help="0.6 s recordings replayed in real time (default 24)")
    args = parser.parse_args(argv)
    os.environ["CYCLONEDDS_URI"] = CYCLONEDDS_LOOPBACK  # this process's DDS reader: loopback only, like the bridge
    domain = 150 + os.getpid() % 50
    recordings = [
        Recording(random_events(150_000, seed=100 + i, duration_us=600_000), (128, 128), label=i % 11, name=f"r{i}")
        for i in range(args.recordings)
    ]
    with tempfile.TemporaryDirectory(prefix="s2g-bench-bridges-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "mosquitto").mkdir()
        write_tiny_model(tmp / "tiny.nir", seed=0)
        with start_broker(tmp / "mosquitto") as broker, start_daemon(tmp, tmp / "tiny.nir", mode="lossless", env=EAGER) as d:
            dds = DdsSubscriber(domain)
            mq = Subscriber(broker.plain)
            ref = Reference(d, STREAM)
            ros2 = bridge_process("ros2", "--output", d.output_endpoint, "--domain-id", str(domain),
                                  env={"CYCLONEDDS_URI": CYCLONEDDS_LOOPBACK})  # fmt: skip
            mqtt = bridge_process("mqtt", "--output", d.output_endpoint, "--broker", f"mqtt://127.0.0.1:{broker.plain}",
                                  "--client-id", "bench-bridge")  # fmt: skip
            try:
                dds.next("rt/diagnostics", timeout_s=30)
                dds.matched()
                mq.wait_for("s2gesture/availability", "online")
                replay_args = replay.build_parser().parse_args(
                    ["--input", d.input_endpoint, "--output", d.output_endpoint, "--quiet", "--stream", STREAM]
                )
                started = time.monotonic()
                replay.run(replay_args, recordings=recordings)
                gestures, _ = ref.collect(finals=len(recordings), timeout_s=60)
                elapsed = time.monotonic() - started
                typed = [dds.next("rt/s2gesture/gesture", timeout_s=30) for _ in gestures]
                via_mqtt = [mq.wait_for(f"s2gesture/{STREAM}/gesture", timeout_s=30) for _ in gestures]
            finally:
                ref.close()
                ros2_code, ros2_out = stop_process(ros2)
                mqtt_code, mqtt_out = stop_process(mqtt)
                mq.close()
    if ros2_code or mqtt_code:
        print(f"a bridge failed:\n{ros2_out}\n{mqtt_out}", file=sys.stderr)
        return 1
    for name, out in (("ros2", ros2_out), ("mqtt", mqtt_out)):
        if f"forwarded {len(gestures)} gestures" not in out:
            print(f"s2gesture {name} did not forward exactly the daemon's {len(gestures)} gestures:\n{out}", file=sys.stderr)
            return 1
    for (_, g), (_, m) in zip(gestures, typed, strict=True):
        if (m.stream, m.label, m.final, m.segment) != (g.stream, g.label, g.final, g.segment or ""):
            print(f"DDS sample {m} is not the daemon's gesture {g}", file=sys.stderr)
            return 1
    dds_ms = [(t_dds - t_zmq) * 1e3 for (t_zmq, _), (t_dds, _) in zip(gestures, typed, strict=True)]
    mqtt_ms = [(t_mq - t_zmq) * 1e3 for (t_zmq, _), (t_mq, *_) in zip(gestures, via_mqtt, strict=True)]
    n = len(gestures)
    lines = [
        "## Robot bridges: s2gesture mqtt and s2gesture ros2",
        "",
        f"Measured by `benchmarks/bench_bridges.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: 2 CPUs shared by "
        f"the daemon (lossless, the tests' tiny model, an eager decision policy), both bridges, mosquitto and the "
        f"subscribers; {len(recordings)} recordings replayed in real time ({elapsed:.0f} s), {n} gestures "
        f"({sum(g.final for _, g in gestures)} final), every one received on all three paths.",
        "",
        "| path from the daemon's output | latency added over the direct ZeroMQ subscriber | max |",
        "|---|---|---|",
        "| ZeroMQ SUB on the daemon's output (baseline, same process) | 0 (reference) | |",
        f"| `s2gesture mqtt` -> mosquitto -> paho subscriber (QoS 1) | p50 {pct(mqtt_ms, 50):.2f} ms, p99 {pct(mqtt_ms, 99):.2f} ms | "
        f"{max(mqtt_ms):.2f} ms |",
        f"| `s2gesture ros2` -> Cyclone DDS -> reader of `/s2gesture/gesture` (reliable) | p50 {pct(dds_ms, 50):.2f} ms, "
        f"p99 {pct(dds_ms, 99):.2f} ms | {max(dds_ms):.2f} ms |",
        "",
        "All three subscribers stamp arrivals with the same monotonic clock in one process; the reference is the "
        "earliest a subscriber on the daemon's own output can know of a gesture, so the figures are what each "
        "bridge (an extra hop, a serialization and a broker or DDS transport) costs a robot.",
    ]
    write_section(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
