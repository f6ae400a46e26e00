"""The service's Prometheus metrics, one registry per process (never the library's global one).

Jobs by state and kind and the queue's depth are read from the database at each scrape, so
every process (the bot, any worker) reports the same queue; what a worker measures as it runs
jobs (run time, time spent queued, failures) is counted in that worker's process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: an edit takes seconds on a GPU and minutes on a CPU; learning takes minutes.
_DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class JobCountLike(Protocol):
    """One (kind, state) count, as the storage reports it."""

    kind: str
    state: str
    count: int


class ServiceMetrics:
    """The metrics of one process, and their text in Prometheus' exposition format."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.up = Gauge("oneword_up", "1 while this process runs", ["service"], **labels)
        self.up.labels(service).set(1)
        self.database_up = Gauge("oneword_database_up",
                                 "1 when the database answered the last check", **labels)
        self.jobs = Gauge("oneword_jobs", "Jobs in the database by kind and state",
                          ["kind", "state"], **labels)
        self.queue_depth = Gauge("oneword_queue_depth", "Jobs queued and due now", **labels)
        self.duration = Histogram("oneword_job_duration_seconds",
                                  "Run time of one attempt of a job, by kind and outcome",
                                  ["kind", "outcome"], buckets=_DURATION_BUCKETS, **labels)
        self.queue_wait = Histogram("oneword_job_queue_wait_seconds",
                                    "Time a job waited in the queue before its first attempt",
                                    ["kind"], buckets=_WAIT_BUCKETS, **labels)
        self.failures = Counter("oneword_job_failures",
                                "Failed attempts of jobs, by kind and whether it runs again",
                                ["kind", "retried"], **labels)

    def set_jobs(self, counts: Iterable[JobCountLike], waiting: int) -> None:
        """Replace the jobs-by-state gauges with the database's current counts."""
        self.jobs.clear()
        for entry in counts:
            self.jobs.labels(entry.kind, entry.state).set(entry.count)
        self.queue_depth.set(waiting)

    def attempt_finished(self, kind: str, outcome: str, seconds: float) -> None:
        """Record one attempt's run time; `outcome` is done, failed, cancelled, handed_back
        or lost."""
        self.duration.labels(kind, outcome).observe(max(0.0, seconds))

    def attempt_failed(self, kind: str, retried: bool) -> None:
        """Count a failed attempt."""
        self.failures.labels(kind, "yes" if retried else "no").inc()

    def job_started(self, kind: str, waited_s: float) -> None:
        """Record how long a job waited in the queue before a worker first took it."""
        self.queue_wait.labels(kind).observe(max(0.0, waited_s))

    def text(self) -> bytes:
        """Every metric in Prometheus' text format."""
        return generate_latest(self.registry)
