"""Prometheus metrics of the daemon: jobs by outcome and source, stage latencies, queue, model.

One registry per daemon (tests run several in one process); ``/metrics`` renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

if TYPE_CHECKING:
    from engine.session import Session

STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and histograms the job paths update; gauges read live values when scraped."""

    def __init__(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("unet_matting_jobs", "Jobs finished, by outcome and source (upload, http)",
                            ["outcome", "source"], registry=self.registry)
        self.stage_seconds = Histogram("unet_matting_stage_seconds", "Time per pipeline stage",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.job_seconds = Histogram("unet_matting_job_seconds", "Time per job, start to outcome",
                                     ["source"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.last_success = Gauge("unet_matting_last_success_timestamp_seconds",
                                  "Unix time of the last job that produced a cut-out", registry=self.registry)
        self.model = Info("unet_matting_model", "The model that runs", registry=self.registry)
        Gauge("unet_matting_queue_depth", "Uploads waiting for a worker",
              registry=self.registry).set_function(queue_depth)
        Gauge("unet_matting_in_flight", "Jobs being processed now (uploads and HTTP)",
              registry=self.registry).set_function(in_flight)

    def finished(self, outcome: str, source: str, seconds: float, stages_ms: Mapping[str, float] | None,
                 now: float) -> None:
        self.jobs.labels(outcome, source).inc()
        self.job_seconds.labels(source).observe(seconds)
        for stage, ms in (stages_ms or {}).items():
            self.stage_seconds.labels(stage).observe(ms / 1000)
        if outcome == "done":
            self.last_success.set(now)

    def model_loaded(self, session: Session) -> None:
        self.model.info({"model": session.info.label, "arch": session.info.arch, "device": str(session.device),
                         "input_size": str(session.input_size)})

    def render(self) -> bytes:
        return generate_latest(self.registry)
