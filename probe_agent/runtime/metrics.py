"""The agent's own metrics (probe_agent_*), kept in prometheus-client objects.

The probe series are rendered by probe_agent.outputs.exposition, off the event loop.
"""

from __future__ import annotations

import contextlib
import platform
import time

from prometheus_client import GC_COLLECTOR, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from probe_agent import __version__

# A counter's or histogram's `_created` series (when it was made) is one more series for each,
# which no rule or dashboard of the agent's reads: prometheus-client's are off, process-wide.
disable_created_metrics()  # type: ignore[no-untyped-call]

LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class AgentMetrics:
    """The agent's own health: build, scheduler and loop lag, reloads, scrapes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        # python_gc_*: the cyclic collector's work (the daemon tunes it: probe_agent.daemon), as
        # Python exporters have it (client_golang has go_gc_*)
        r.register(GC_COLLECTOR)
        build = Gauge("probe_agent_build_info", "Build information; always 1.", ["version", "python"], registry=r)
        self.shard_info = Gauge(
            "probe_agent_shard_info",
            "Which shard of the probes this replica runs (run --shard); always 1.",
            ["shard", "shards"],
            registry=r,
        )
        # a number, for the alert that counts the shards reporting (a label cannot be compared)
        self.shards = Gauge(
            "probe_agent_shards",
            "Replicas the probes are split across (run --shard INDEX/N): N. Absent unsharded.",
            registry=r,
        )
        build.labels(__version__, platform.python_version()).set(1)
        self.scheduler_lag = Histogram(
            "probe_agent_scheduler_lag_seconds",
            "How late probe runs start compared with their planned time.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.loop_lag = Gauge(
            "probe_agent_event_loop_lag_seconds",
            "How late the event loop woke a 0.5 s timer, last measurement.",
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "probe_agent_event_loop_lag_max_seconds", "Largest event loop lag seen since the last scrape.", registry=r
        )
        self.skipped_runs = Counter(
            "probe_agent_skipped_runs",
            "Planned runs skipped, by cause: overrun (the previous run ended after the tick), target (the"
            " target's slots were held by slow runs until the next tick), concurrency (all slots were),"
            " overload (shed at once: more runs already waited for a slot than can run).",
            ["cause"],
            registry=r,
        )
        self.delayed_runs = Counter(
            "probe_agent_delayed_runs",
            "Runs that waited for a slot more than a tenth of their interval, by what they waited for.",
            ["cause"],
            registry=r,
        )
        for cause in ("overrun", "target", "concurrency", "overload"):
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
        self.overloaded = Gauge(
            "probe_agent_overloaded",
            "1 while the agent sheds runs it cannot start (past saturation, in the last 5 s): their results"
            " are UNKNOWN, reason internal, not failures of their targets.",
            registry=r,
        )
        self.probes = Gauge("probe_agent_probes", "Probes configured.", registry=r)
        self.reload_success = Gauge(
            "probe_agent_config_last_reload_successful", "1 if the last config load succeeded.", registry=r
        )
        self.reload_timestamp = Gauge(
            "probe_agent_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load.",
            registry=r,
        )
        self.scrapes = Counter("probe_agent_scrapes", "Scrapes of /metrics served.", registry=r)
        self.last_scrape = Gauge(
            "probe_agent_last_scrape_timestamp_seconds", "Unix time of the last /metrics scrape.", registry=r
        )
        self.remediations = Counter(
            "probe_agent_remediations",
            "Remediation hook outcomes by probe and action: ok, failed, dry_run (logged, not run), suppressed"
            " (wanted, but the attempts of the window were spent).",
            ["probe", "action", "result"],
            registry=r,
        )
        self.remediation_escalated = Gauge(
            "probe_agent_remediation_escalated",
            "1 while a probe is still failing after its remediation attempts of the window: escalate.",
            ["probe"],
            registry=r,
        )
        self.discovery_targets = Gauge(
            "probe_agent_discovery_targets",
            "Probes made from a target group's discovered targets, as last loaded.",
            ["group"],
            registry=r,
        )
        self.discovery_refresh_failures = Counter(
            "probe_agent_discovery_refresh_failures",
            "Reads of a target group's source (file_sd file, http_sd URL) that failed (unreadable,"
            " malformed, over max_targets): its last good targets keep running.",
            ["group", "source"],
            registry=r,
        )
        self.discovery_last_success = Gauge(
            "probe_agent_discovery_last_success_timestamp_seconds",
            "When a target group's source last answered with a good list; 0 if it never has (its targets are pending).",
            ["group", "source"],
            registry=r,
        )
        self.probe_endpoint_requests = Counter(
            "probe_agent_probe_endpoint_requests",
            "GET /probe requests by module and outcome: ok (run and answered), forbidden (a target"
            " the module may not probe), unknown_module, bad_request, busy (concurrency or rate"
            " limit), off (no probe_endpoint configured).",
            ["module", "outcome"],
            registry=r,
        )
        self.discovery_source_targets = Gauge(
            "probe_agent_discovery_source_targets",
            "Targets a target group's source listed at the last load, before relabelling.",
            ["group", "source"],
            registry=r,
        )
        self._discovery_groups: set[str] = set()  # groups with a discovery_targets series
        self._discovery_sources: set[tuple[str, str]] = set()  # (group, source) with series
        self._loop_lag_peak = 0.0

    def count_discovered(self, groups: list[str], by_group: dict[str, int]) -> None:
        """Set the targets gauge of every group (0 for one that found none), dropping gone groups."""
        for gone in self._discovery_groups - set(groups):
            self.discovery_targets.remove(gone)
        self._discovery_groups = set(groups)
        for group in groups:
            self.discovery_targets.labels(group).set(by_group.get(group, 0))

    def count_sources(self, sources: dict[tuple[str, str], tuple[float | None, int]]) -> None:
        """Set each source's gauges ((group, source) -> when it last answered, targets it
        listed), dropping gone sources' series."""
        for gone in self._discovery_sources - set(sources):
            for family in (self.discovery_last_success, self.discovery_refresh_failures, self.discovery_source_targets):
                with contextlib.suppress(KeyError):
                    family.remove(*gone)
        self._discovery_sources = set(sources)
        for key, (when, targets) in sources.items():
            self.discovery_last_success.labels(*key).set(when or 0.0)
            self.discovery_source_targets.labels(*key).set(targets)

    def observe_loop_lag(self, lag: float) -> None:
        self.loop_lag.set(lag)
        self._loop_lag_peak = max(self._loop_lag_peak, lag)
        self.loop_lag_max.set(self._loop_lag_peak)

    def scraped(self) -> None:
        self.scrapes.inc()
        self.last_scrape.set(time.time())
        self._loop_lag_peak = 0.0
