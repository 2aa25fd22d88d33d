"""Prometheus metrics (``s2g_*``, base units), served on loopback only when configured.

The exporter thread never touches the loop's live state: a collector turns the last published status
snapshot (replaced whole each heartbeat, never mutated) into metric families at scrape time, so the hot
path pays nothing per packet.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.exposition import start_http_server

STATES = ("loading", "ready", "reloading", "degraded", "stopping")


class StatusCollector:
    """Metric families from a service's status snapshot and latency windows."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Any:
        """Yield every s2g_* family (called by prometheus_client at scrape time)."""
        snap: dict[str, Any] = self.service.status_snapshot
        streams: dict[str, Any] = snap.get("streams", {})
        packets = CounterMetricFamily("s2g_packets", "Event packets accepted", labels=["stream"])
        events = CounterMetricFamily("s2g_events", "Events accepted", labels=["stream"])
        flicker = CounterMetricFamily("s2g_flicker_events", "Events dropped as a lamp's flicker", labels=["stream"])
        dropped = CounterMetricFamily("s2g_dropped_packets", "Packets dropped, by reason", labels=["stream", "reason"])
        chunks = CounterMetricFamily("s2g_chunks", "Windows by outcome", labels=["stream", "outcome"])
        queue = GaugeMetricFamily("s2g_queue_depth_packets", "Packets queued per stream", labels=["stream"])
        age = GaugeMetricFamily("s2g_last_packet_age_seconds", "Seconds since the last packet", labels=["stream"])
        for sid, s in streams.items():
            packets.add_metric([sid], s["packets"])
            events.add_metric([sid], s["events"])
            flicker.add_metric([sid], s.get("events_flicker", 0))
            for reason, n in s["dropped"].items():
                dropped.add_metric([sid, reason], n)
            chunks.add_metric([sid, "run"], s["chunks"])
            chunks.add_metric([sid, "skipped"], s["chunks_skipped"])
            chunks.add_metric([sid, "failed"], s["chunks_failed"])
            queue.add_metric([sid], s["queue"])
            age.add_metric([sid], s["last_packet_age_s"])
        yield from (packets, events, flicker, dropped, chunks, queue, age)
        for name, window, doc in (
            ("s2g_inference_seconds", self.service.inference, "Backend run time per window"),
            ("s2g_end_to_end_latency_seconds", self.service.e2e, "Last packet of a window received -> pred published"),
        ):
            buckets, acc = [], 0
            for bound, n in zip((*window.BUCKETS_S, float("inf")), window.buckets.tolist(), strict=True):
                acc += n
                buckets.append((str(bound) if bound != float("inf") else "+Inf", acc))
            yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=window.sum_s)
        state = GaugeMetricFamily("s2g_state", "1 for the daemon's current state", labels=["state"])
        for s in STATES:
            state.add_metric([s], 1.0 if snap.get("state") == s else 0.0)
        yield state
        uptime = GaugeMetricFamily("s2g_uptime_seconds", "Seconds since start")
        uptime.add_metric([], snap.get("uptime_s", 0.0))
        yield uptime
        model = snap.get("model") or {}
        info = InfoMetricFamily("s2g_model", "Model served")
        info.add_metric([], {"name": str(model.get("name", "")), "hash": str(model.get("hash", "")),
                             "backend": str(snap.get("backend", ""))})
        yield info


class MetricsServer:
    """A running exporter; ``close()`` stops it."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server, self._thread = server, thread

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def start_metrics(service: Any, address: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` on ``address:port`` (pass the address: prometheus_client binds all interfaces by default)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(service))  # type: ignore[arg-type]
    server, thread = start_http_server(port, addr=address, registry=registry)
    return MetricsServer(server, thread)
