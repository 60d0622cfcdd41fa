"""Prometheus exposition: probe series built from the StateStore at scrape time, plus agent self-metrics.

Building probe series on each scrape (a custom collector) rather than keeping
prometheus-client metric objects means a probe removed by a reload vanishes
from /metrics with no label bookkeeping.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from probe_agent import __version__
from probe_agent.model import Status
from probe_agent.probes import REGISTRY
from probe_agent.state import DURATION_BUCKETS, StateStore

LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class _Families:
    """Metric families for one scrape; each label set may differ by the probe's user labels."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def gauge(self, name: str, help_text: str) -> GaugeMetricFamily:
        if name not in self.by_name:
            self.by_name[name] = GaugeMetricFamily(name, help_text, labels=())
        return self.by_name[name]  # type: ignore[return-value]


class ProbeCollector(Collector):
    def __init__(self, store: StateStore):
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # dynamic: do not let the registry call collect() at registration

    def collect(self) -> Iterator[Metric]:
        success = GaugeMetricFamily("probe_success", "1 if the last run of the probe succeeded (status OK or WARNING), else 0.")
        status = GaugeMetricFamily("probe_status", "Status of the last run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
        healthy = GaugeMetricFamily(
            "probe_healthy", "1 if the probe is healthy after failure_threshold/success_threshold, 0 if failing."
        )
        duration = HistogramMetricFamily("probe_duration_seconds", "Duration of probe runs.")
        results = CounterMetricFamily("probe_results", "Probe runs by resulting status.")
        failures = CounterMetricFamily("probe_failures", "Failed probe runs by reason.")
        last_run = GaugeMetricFamily("probe_last_run_timestamp_seconds", "Unix time at which the last run started.")
        info = GaugeMetricFamily("probe_info", "Probe configuration; always 1.")
        families = _Families()

        for state in self.store.probes.values():
            cfg = state.config
            names = ["probe", "type", *cfg.labels]
            base = [cfg.name, cfg.type, *cfg.labels.values()]
            _add(info, [*names, "target"], [*base, state.target], 1)
            for status_value in Status:
                _add(results, [*names, "status"], [*base, status_value.label], state.results_by_status[status_value])
            for reason, count in sorted(state.failures_by_reason.items()):
                _add(failures, [*names, "reason"], [*base, reason], count)
            last = state.last
            if last is None:
                continue
            _add(success, names, base, 1 if last.success else 0)
            _add(status, names, base, int(last.status))
            _add(healthy, names, base, 0 if state.health == "failing" else 1)
            _add(last_run, names, base, last.started_at)
            cumulative, buckets = 0, []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), state.bucket_counts):
                cumulative += count
                buckets.append((_bucket_label(bound), cumulative))
            duration.samples.extend(_histogram_samples("probe_duration_seconds", names, base, buckets, state.duration_sum))

            probe_cls = REGISTRY[cfg.type]
            if probe_cls.phase_metric:
                phases = families.gauge(
                    probe_cls.phase_metric, f"Duration of each {probe_cls.phase_label} of the last {cfg.type} probe run."
                )
                for phase, seconds in last.phases.items():
                    _add(phases, [*names, probe_cls.phase_label], [*base, phase], seconds)
            for value_name, value in last.values.items():
                spec = probe_cls.values.get(value_name)
                if spec is None or spec.metric is None:
                    continue
                _add(families.gauge(spec.metric, spec.help), names, base, value)

        yield from (success, status, healthy, duration, results, failures, last_run, info)
        yield from families.by_name.values()


def _add(family: Metric, names: list[str], values: list[str], value: float) -> None:
    family.samples.append(_sample(family.name + ("_total" if family.type == "counter" else ""), names, values, value))


def _sample(name: str, names: list[str], values: list[str], value: float) -> Sample:
    return Sample(name, dict(zip(names, values)), value, None, None)


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _histogram_samples(
    name: str, names: list[str], values: list[str], buckets: list[tuple[str, int]], total: float
) -> list[Sample]:
    samples = [_sample(f"{name}_bucket", [*names, "le"], [*values, le], count) for le, count in buckets]
    samples.append(_sample(f"{name}_count", names, values, buckets[-1][1]))
    samples.append(_sample(f"{name}_sum", names, values, total))
    return samples


class AgentMetrics:
    """The agent's own health: build, scheduler and loop lag, reloads, scrapes."""

    def __init__(self, store: StateStore):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProbeCollector(store))
        r = self.registry
        build = Gauge("probe_agent_build_info", "Build information; always 1.", ["version", "python"], registry=r)
        build.labels(__version__, platform.python_version()).set(1)
        self.scheduler_lag = Histogram(
            "probe_agent_scheduler_lag_seconds",
            "How late probe runs start compared with their planned time.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.loop_lag = Gauge(
            "probe_agent_event_loop_lag_seconds", "How late the event loop woke a 0.5 s timer, last measurement.", registry=r
        )
        self.loop_lag_max = Gauge(
            "probe_agent_event_loop_lag_max_seconds", "Largest event loop lag seen since the last scrape.", registry=r
        )
        self.skipped_runs = Counter(
            "probe_agent_skipped_runs",
            "Planned runs skipped, by cause: overrun (the previous run ended after the tick), target (the"
            " target's slots were held by slow runs until the next tick), concurrency (all slots were).",
            ["cause"],
            registry=r,
        )
        self.delayed_runs = Counter(
            "probe_agent_delayed_runs",
            "Runs that waited for a slot more than a tenth of their interval, by what they waited for.",
            ["cause"],
            registry=r,
        )
        for cause in ("overrun", "target", "concurrency"):
            self.skipped_runs.labels(cause)
        for cause in ("target", "concurrency"):
            self.delayed_runs.labels(cause)
        self.distorted_runs = Counter(
            "probe_agent_distorted_runs",
            "Runs measured while the agent's event loop was late by more than the tolerance: their timings"
            " may include the agent's own delay.",
            registry=r,
        )
        self.pending_probes = Gauge("probe_agent_pending_probes", "Probes with no completed run yet.", registry=r)
        self.stale_probes = Gauge(
            "probe_agent_stale_probes", "Probes whose last result is older than about twice their interval.", registry=r
        )
        self.in_flight = Gauge("probe_agent_runs_in_flight", "Probe runs in progress.", registry=r)
        self.probes = Gauge("probe_agent_probes", "Probes configured.", registry=r)
        self.reload_success = Gauge(
            "probe_agent_config_last_reload_successful", "1 if the last config load succeeded.", registry=r
        )
        self.reload_timestamp = Gauge(
            "probe_agent_config_last_reload_success_timestamp_seconds", "Unix time of the last successful config load.", registry=r
        )
        self.scrapes = Counter("probe_agent_scrapes", "Scrapes of /metrics served.", registry=r)
        self.last_scrape = Gauge(
            "probe_agent_last_scrape_timestamp_seconds", "Unix time of the last /metrics scrape.", registry=r
        )
        self._loop_lag_peak = 0.0

    def observe_loop_lag(self, lag: float) -> None:
        self.loop_lag.set(lag)
        self._loop_lag_peak = max(self._loop_lag_peak, lag)
        self.loop_lag_max.set(self._loop_lag_peak)

    def scraped(self) -> None:
        self.scrapes.inc()
        self.last_scrape.set(time.time())
        self._loop_lag_peak = 0.0
