"""Prometheus metrics of one service process: recommendation requests and latency per arm,
the request threads, and the exposure log's counters, read when scraped."""

from collections.abc import Iterator

from anyio import CapacityLimiter
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from experiment.exposure_log import ExposureLog

disable_created_metrics()  # no *_created series: they double the output and nobody reads them

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """A registry of its own per app, so several apps in one process (tests) do not clash."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "feedlab_recommendation_requests",
            "Recommendation responses, by experiment ('' outside one) and arm.",
            ["experiment", "arm"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "feedlab_recommendation_latency_seconds",
            "Time to rank and log a recommendation response, by arm.",
            ["arm"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch(self, exposure_log: ExposureLog) -> None:
        self.registry.register(_ExposureLogCollector(exposure_log))

    def watch_threads(self, limiter: CapacityLimiter) -> None:
        self.registry.register(_ThreadsCollector(limiter))

    def observe(self, experiment: str | None, arm: str, seconds: float) -> None:
        self.requests.labels(experiment or "", arm).inc()
        self.latency.labels(arm).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ThreadsCollector(Collector):
    def __init__(self, limiter: CapacityLimiter) -> None:
        self._limiter = limiter

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "feedlab_request_threads",
            "Threads of this worker's request pool, for the endpoints that wait on the database "
            "(FEEDLAB_REQUEST_THREADS).",
            value=self._limiter.total_tokens,
        )
        yield GaugeMetricFamily(
            "feedlab_request_threads_busy",
            "Pool threads serving a request now; further pool requests wait for one.",
            value=self._limiter.borrowed_tokens,
        )


class _ExposureLogCollector(Collector):
    def __init__(self, exposure_log: ExposureLog) -> None:
        self._log = exposure_log

    def collect(self) -> Iterator[Metric]:
        s = self._log.stats()
        counters = {
            "logged": (s.logged, "Exposures handed to the log."),
            "written": (s.written, "Exposures written to the database."),
            "spilled": (s.spilled, "Exposures written to the local spill file."),
            "replayed": (s.replayed, "Spilled exposures written to the database since."),
            "dropped": (s.dropped, "Exposures lost: memory and spill file full or failing."),
        }
        for name, (value, help_text) in counters.items():
            yield CounterMetricFamily(f"feedlab_exposures_{name}", help_text, value=value)
        yield CounterMetricFamily(
            "feedlab_exposure_write_errors", "Failed batch writes (retried).", value=s.write_errors
        )
        gauges = {
            "feedlab_exposures_buffered": (s.buffered, "Exposures in memory, not yet written."),
            "feedlab_exposures_spill_pending": (
                s.spill_pending,
                "Exposures in spill files, not yet written.",
            ),
            "feedlab_exposure_database_up": (
                int(s.database_ok),
                "1 when the last exposure write succeeded.",
            ),
        }
        for name, (value, help_text) in gauges.items():
            yield GaugeMetricFamily(name, help_text, value=value)
