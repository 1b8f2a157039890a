"""Prometheus metrics of the daemon: jobs by outcome and source, stage latencies, queue, model,
confidence scores and the review queue.

One registry per daemon (tests run several in one process); ``/metrics`` renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from unet_matting.engine.session import Session
    from unet_matting.watcher.remote.client import QueueStats

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and histograms the job paths update; gauges read live values when scraped."""

    def __init__(
        self,
        queue_depth: Callable[[], float],
        in_flight: Callable[[], float],
        gpu_memory: Callable[[], Mapping[str, int] | None] = lambda: None,
        broker: Callable[[], QueueStats | None] = lambda: None,
        held: Callable[[], float] = lambda: 0,
        events: Callable[[], Mapping[str, tuple[int, int]]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "unet_matting_jobs",
            "Jobs finished, by outcome and source (upload, http, batch)",
            ["outcome", "source"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "unet_matting_stage_seconds",
            "Time per pipeline stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "unet_matting_job_seconds",
            "Time per job, start to outcome",
            ["source"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "unet_matting_last_success_timestamp_seconds",
            "Unix time of the last job that produced a cut-out",
            registry=self.registry,
        )
        self.model = Info("unet_matting_model", "The model that runs", registry=self.registry)
        Gauge("unet_matting_queue_depth", "Uploads waiting for a worker", registry=self.registry).set_function(
            queue_depth
        )
        Gauge(
            "unet_matting_in_flight", "Jobs being processed now (uploads and HTTP)", registry=self.registry
        ).set_function(in_flight)
        Gauge("unet_matting_review_held", "Cut-outs held for review now", registry=self.registry).set_function(held)
        self.decisions = Counter(
            "unet_matting_review_decisions",
            "Review decisions carried out, by kind (approve, reject, retry)",
            ["decision"],
            registry=self.registry,
        )
        self.confidence = Histogram(
            "unet_matting_confidence",
            "Confidence score of the cut-outs made (engine/confidence.py)",
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        self.validations = Counter(
            "unet_matting_validations",
            "Cut-outs checked against their profile's marketplace rules, by profile and result (passed, failed)",
            ["profile", "result"],
            registry=self.registry,
        )
        self.rules_broken = Counter(
            "unet_matting_validation_failures",
            "Marketplace rules a cut-out broke, by profile and rule",
            ["profile", "rule"],
            registry=self.registry,
        )
        self.events = Counter(
            "unet_matting_events",
            "Event deliveries by endpoint and outcome: delivered (2xx), failed (a try that did not "
            "get through; retried), dead (given up after events.dead_after_h)",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.registry.register(OutboxCollector(events))
        self.registry.register(GpuMemoryCollector(gpu_memory))
        self.registry.register(BrokerCollector(broker))

    def finished(
        self, outcome: str, source: str, seconds: float, stages_ms: Mapping[str, float] | None, now: float
    ) -> None:
        self.jobs.labels(outcome, source).inc()
        self.job_seconds.labels(source).observe(seconds)
        for stage, ms in (stages_ms or {}).items():
            self.stage_seconds.labels(stage).observe(ms / 1000)
        if outcome == "done":
            self.last_success.set(now)

    def decided(self, decision: str) -> None:
        self.decisions.labels(decision).inc()

    def judged(self, score: float) -> None:
        self.confidence.observe(score)

    def event_counted(self, endpoint: str, outcome: str) -> None:
        self.events.labels(endpoint, outcome).inc()

    def validated(self, profile: str, rules: list[str]) -> None:
        """One cut-out checked against ``profile``'s rules; ``rules``: the ones it broke."""
        self.validations.labels(profile, "failed" if rules else "passed").inc()
        for rule in rules:
            self.rules_broken.labels(profile, rule).inc()

    def model_loaded(self, session: Session) -> None:
        self.model.info(
            {
                "model": session.info.label,
                "arch": session.info.arch,
                "device": str(session.device),
                "input_size": str(session.input_size),
                "precision": session.precision,
            }
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class OutboxCollector:
    """``unet_matting_events_pending{endpoint}`` and ``unet_matting_events_dead{endpoint}``: the
    outbox's files now, per configured endpoint."""

    PENDING = ("unet_matting_events_pending", "Events written and not yet delivered, per endpoint")
    DEAD = ("unet_matting_events_dead", "Events in outbox/dead/ (never delivered), per endpoint")

    def __init__(self, read: Callable[[], Mapping[str, tuple[int, int]]]) -> None:
        self._read = read

    def describe(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(*self.PENDING, labels=["endpoint"]),
            GaugeMetricFamily(*self.DEAD, labels=["endpoint"]),
        ]

    def collect(self) -> list[GaugeMetricFamily]:
        counts = self._read()
        if not counts:
            return []
        pending = GaugeMetricFamily(*self.PENDING, labels=["endpoint"])
        dead = GaugeMetricFamily(*self.DEAD, labels=["endpoint"])
        for endpoint, (waiting, died) in counts.items():
            pending.add_metric([endpoint], waiting)
            dead.add_metric([endpoint], died)
        return [pending, dead]


class GpuMemoryCollector:
    """``unet_matting_gpu_memory_bytes{kind=allocated|reserved|peak}``, only while a CUDA model runs."""

    NAME, HELP = "unet_matting_gpu_memory_bytes", "GPU memory of this process: allocated, cached, peak allocated"

    def __init__(self, read: Callable[[], Mapping[str, int] | None]) -> None:
        self._read = read

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.NAME, self.HELP, labels=["kind"])]

    def collect(self) -> list[GaugeMetricFamily]:
        figures = self._read()
        if not figures:
            return []
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["kind"])
        for kind, value in figures.items():
            family.add_metric([kind], value)
        return [family]


class BrokerCollector:
    """Queue mode only: the broker's jobs waiting, workers connected, dead jobs, and this
    watcher's jobs awaiting an answer (a sample is left out while the broker is unreachable)."""

    GAUGES = (
        ("connected", "1 while the watcher is connected to RabbitMQ"),
        ("jobs_ready", "Jobs in the broker waiting for a worker"),
        ("workers", "Worker processes consuming the jobs queue"),
        ("dead", "Jobs in the dead-letter queue"),
        ("waiting", "This watcher's jobs sent and not yet answered"),
    )

    def __init__(self, read: Callable[[], QueueStats | None]) -> None:
        self._read = read

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(f"unet_matting_broker_{name}", text) for name, text in self.GAUGES]

    def collect(self) -> list[GaugeMetricFamily]:
        stats = self._read()
        if stats is None:
            return []
        values = {
            "connected": float(stats.connected),
            "jobs_ready": stats.jobs_ready,
            "workers": stats.workers,
            "dead": stats.dead,
            "waiting": stats.waiting,
        }
        return [
            GaugeMetricFamily(f"unet_matting_broker_{name}", text, value=values[name])
            for name, text in self.GAUGES
            if values[name] is not None
        ]
