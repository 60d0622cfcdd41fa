"""Per-probe state built from Results, and the /health aggregate.

`failure_threshold` / `success_threshold` follow Kubernetes: a probe is
reported failing only after N consecutive failed runs, and healthy again
after M consecutive successes.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import itertools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from probe_agent.config.loader import AgentConfig
from probe_agent.core.health import Health, Verdict
from probe_agent.core.results import Result, Status
from probe_agent.probes import REGISTRY
from probe_agent.probes.base import ProbeConfig
from probe_agent.runtime.history import ProbeHistory

STALE_MARGIN = 5.0
_serials = itertools.count()


def stale_after(config: ProbeConfig) -> float:
    """Seconds after its last run ended that a probe's result stops counting: about two intervals."""
    return max(2 * config.interval, config.interval + config.timeout + STALE_MARGIN)


@dataclass(frozen=True, slots=True)
class Transition:
    probe: str
    old: Status | None
    new: Status
    result: Result


@dataclass(slots=True)
class ProbeState:
    config: ProbeConfig
    target: str  # redacted
    last: Result | None = None
    health: Health = Health.PENDING
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    results_by_status: collections.Counter[Status] = field(default_factory=collections.Counter)
    failures_by_reason: collections.Counter[str] = field(default_factory=collections.Counter)
    bucket_counts: list[int] = field(default_factory=list)  # by config.buckets, then +Inf
    duration_sum: float = 0.0
    # phase -> bucket counts and sum, for types with a phase histogram (synthetic steps)
    phase_counts: dict[str, list[int]] = field(default_factory=dict)
    phase_sums: dict[str, float] = field(default_factory=dict)
    finished: float = 0.0  # monotonic time the last run ended
    stale: bool = False  # set by the agent's watchdog, so a change can be logged once
    version: int = 0  # bumped on every change, for caches of what is derived from the state
    serial: int = field(default_factory=lambda: next(_serials))  # tells a state from the one it replaced
    exposition_labels: object = None  # the /metrics label text, made once (probe_agent.outputs.exposition)
    maintenance: str | None = None  # the window covering the probe now; set by the agent
    maintenance_runs: int = 0  # runs during maintenance: counted apart, in nothing else
    skipped_runs: int = 0  # ticks the agent could not start (Result.skipped): counted apart, in nothing else
    last_skipped: Result | None = None
    history: ProbeHistory = field(default_factory=ProbeHistory)  # for the status page; survives a config change

    def carry_over(self, old: ProbeState) -> None:
        """What a changed probe of the same target keeps: its last result, health and streaks, so a
        reload neither runs it early nor shows it pending (its counters start afresh with its series)."""
        self.last, self.finished = old.last, old.finished
        self.bucket_counts = [0] * (len(self.config.buckets) + 1)  # /metrics renders them once there is a result
        self.health = old.health
        self.consecutive_failures, self.consecutive_successes = old.consecutive_failures, old.consecutive_successes

    def _count_phases(self, phases: dict[str, float]) -> None:
        known = self.config.phase_names()
        bounds = self.config.buckets
        for name, seconds in phases.items():
            if name not in known:
                continue  # a config's own names only: the series stay bounded
            counts = self.phase_counts.get(name)
            if counts is None:
                counts = self.phase_counts[name] = [0] * (len(bounds) + 1)
            counts[bisect.bisect_left(bounds, seconds)] += 1
            self.phase_sums[name] = self.phase_sums.get(name, 0.0) + seconds

    def record(self, result: Result) -> Transition | None:
        if result.skipped:
            # the agent's condition, not the target's: the last real result stands
            self.skipped_runs += 1
            self.last_skipped = result
            self.version += 1
            return None
        old = self.last.status if self.last else None
        health_before = self.reported_health()
        self.last = result
        self.finished = time.monotonic()
        self.stale = False
        self.version += 1
        if not self.bucket_counts:
            self.bucket_counts = [0] * (len(self.config.buckets) + 1)
        if self.maintenance is not None:
            # Planned work is not a failure and its latencies are not the service's: these runs
            # stay out of the results and failures counters and the histogram the SLOs read.
            self.maintenance_runs += 1
        else:
            self.results_by_status[result.status] += 1
            if result.reason is not None:
                self.failures_by_reason[result.reason.value] += 1
            self.bucket_counts[bisect.bisect_left(self.config.buckets, result.duration)] += 1
            if result.phases and REGISTRY[self.config.type].phase_histogram:
                self._count_phases(result.phases)
            self.duration_sum += result.duration

        if result.success:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            if self.health is not Health.OK and (
                self.health is Health.PENDING or self.consecutive_successes >= self.config.success_threshold
            ):
                self.health = Health.OK
        else:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            if self.consecutive_failures >= self.config.failure_threshold:
                self.health = Health.FAILING
        if self.maintenance is None:
            self.history.count(result.success)
        self.note_health(health_before, result.message)
        return Transition(self.config.name, old, result.status, result) if old != result.status else None

    def note_health(self, before: Health, message: str) -> None:
        """An incident for the status page when the reported health changed (a first run that
        succeeds is no news)."""
        after = self.reported_health()
        if after is not before and not (before is Health.PENDING and after is Health.OK):
            self.history.change(before.value, after.value, message)

    def is_stale(self, now: float) -> bool:
        return self.last is not None and now - self.finished > stale_after(self.config)

    def effective_health(self) -> Health:
        """What the runs say (probe_healthy), maintenance or not."""
        if self.last is None:
            return Health.PENDING
        return Health.STALE if self.stale else self.health

    def reported_health(self) -> Health:
        """What /health, `check` and the status page say: MAINTENANCE inside a window."""
        return Health.MAINTENANCE if self.maintenance is not None else self.effective_health()

    def to_dict(self) -> dict[str, Any]:
        last = self.last
        return {
            "name": self.config.name,
            "type": self.config.type,
            "target": self.target,
            "critical": self.config.critical,
            "health": self.reported_health().value,
            "maintenance": self.maintenance,
            "status": last.status.label if last else None,
            "reason": last.reason.value if last and last.reason else None,
            "message": last.message if last else "",
            "duration_seconds": round(last.duration, 6) if last else None,
            "last_run": last.started_at if last else None,
            "consecutive_failures": self.consecutive_failures,
            "values": last.values if last else {},
            "distorted": last.distorted if last else False,
            # the newest tick the agent could not start, when newer than the last run
            "skipped": (
                self.last_skipped.message
                if self.last_skipped is not None and (last is None or self.last_skipped.started_at >= last.started_at)
                else None
            ),
        }


class StateStore:
    def __init__(self) -> None:
        self.probes: dict[str, ProbeState] = {}

    def plan(self, configs: list[ProbeConfig], targets: dict[str, str]) -> dict[str, ProbeState]:
        """The states for a new config: kept where the probe did not change, fresh elsewhere.

        Pure (reads, never writes, the current states): a reload builds it in a worker thread
        and swaps it in with `self.probes = ...` only once everything else is built."""
        current = self.probes
        fresh: dict[str, ProbeState] = {}
        for config in configs:
            old = current.get(config.name)
            if old is not None and old.config == config:
                fresh[config.name] = old
            else:  # new, or changed: a fresh state, but a changed probe keeps its past for the status page
                state = fresh[config.name] = ProbeState(config, targets[config.name])
                if old is not None:
                    state.history = old.history
                    if old.config.type == config.type and old.target == state.target:
                        # the same target, other settings (a threshold, a label): what was last
                        # seen of it still stands until its next run, which keeps its tick
                        state.carry_over(old)
        return fresh

    def plan_config(self, config: AgentConfig) -> dict[str, ProbeState]:
        """plan() for a whole config, with each probe's target redacted for probe_info and /health."""
        return self.plan(config.probes, {c.name: config.redactor(c.name).redact(c.target()) for c in config.probes})

    def sync(self, configs: list[ProbeConfig], targets: dict[str, str]) -> None:
        self.probes = self.plan(configs, targets)

    def record(self, result: Result) -> Transition | None:
        state = self.probes.get(result.probe)
        return state.record(result) if state is not None else None

    def health(self) -> tuple[str, int, list[dict[str, Any]]]:
        """Overall status, HTTP code, and per-probe view for /health (all at once; for tests and `check`)."""
        tally = Tally()
        views = []
        for state in list(self.probes.values()):
            tally.add(state)
            views.append(state.to_dict())
        return *tally.overall(), views

    def overall(self) -> tuple[Verdict, int]:
        tally = Tally()
        for state in list(self.probes.values()):
            tally.add(state)
        return tally.overall()


class StalenessClock:
    """When each probe's result would go stale, in a heap: the watchdog looks only at the probes
    whose moment has come, not at every probe every second (at 50,000 probes that sweep alone
    was a tenth of a core on an idle agent). One entry per probe that has a result; an entry
    that comes due for a probe that ran since is put back at its new moment."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ProbeState]] = []
        self._sequence = itertools.count()
        self.stale = 0  # probes marked stale and not yet run since

    def reset(self, states: Iterable[ProbeState]) -> None:
        """A new set of states (a reload): every one with a result, at its moment."""
        self._heap = [
            (s.finished + stale_after(s.config), next(self._sequence), s) for s in states if s.last is not None
        ]
        heapq.heapify(self._heap)
        self.stale = sum(1 for s in self._heap if s[2].stale)

    def first_result(self, state: ProbeState) -> None:
        """A probe's first run ended: from now on it can go stale."""
        heapq.heappush(self._heap, (state.finished + stale_after(state.config), next(self._sequence), state))

    def recovered(self) -> None:
        """A stale probe ran again (ProbeState.record cleared its flag)."""
        self.stale -= 1

    def due(self, now: float, current: Mapping[str, ProbeState]) -> list[ProbeState]:
        """The probes of `current` that went stale by `now` and were not yet marked; each
        entry that came due is put back at its next moment (a probe never leaves the heap)."""
        found = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, state = heapq.heappop(heap)
            if current.get(state.config.name) is not state:
                continue  # replaced by a reload: the new state has its own entry
            if state.is_stale(now):
                if not state.stale:
                    found.append(state)
                    self.stale += 1
                next_look = now + stale_after(state.config)  # still stale: look again later
            else:
                next_look = state.finished + stale_after(state.config)
            heapq.heappush(heap, (next_look, next(self._sequence), state))
        return found


class Tally:
    """The /health verdict, built one probe at a time (the server yields to the loop between batches).

    503 while a critical probe is failing, stale (its results stopped coming) or pending (no run
    finished yet: nothing vouches for it). 200 otherwise: degraded if any probe fails or warns,
    pending while any probe has not run yet, else ok."""

    __slots__ = ("by_health", "critical_bad", "critical_pending", "degraded", "pending")

    def __init__(self) -> None:
        self.critical_bad = self.critical_pending = self.degraded = self.pending = False
        self.by_health: dict[Health, list[str]] = {h: [] for h in Health}

    def add(self, state: ProbeState) -> Health:
        health = state.reported_health()
        self.by_health[health].append(state.config.name)
        if health is Health.MAINTENANCE:
            pass  # fails nothing, and is not pending either: its window says why
        elif health in (Health.FAILING, Health.STALE):
            self.degraded = True
            self.critical_bad = self.critical_bad or state.config.critical
        elif health is Health.PENDING:
            self.pending = True
            self.critical_pending = self.critical_pending or state.config.critical
        elif state.last is not None and state.last.status is Status.WARNING:
            self.degraded = True
        return health

    def add_pending(self, critical: bool) -> None:
        """Something not yet a probe that will be one (a target group waiting for its source)."""
        self.pending = True
        self.critical_pending = self.critical_pending or critical

    def overall(self) -> tuple[Verdict, int]:
        if self.critical_bad:
            return Verdict.FAILING, 503
        if self.critical_pending:
            return Verdict.PENDING, 503
        if self.degraded:
            return Verdict.DEGRADED, 200
        return (Verdict.PENDING if self.pending else Verdict.OK), 200
