"""What a probe run produces: the Observation a probe fills in, and the Result the runner makes of it."""

from __future__ import annotations

import asyncio
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from probe_agent.core.errors import Reason


class Status(enum.IntEnum):
    """Nagios semantics; the value is the `check` exit code and the probe_status gauge."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(slots=True)
class Observation:
    """Handed to a probe's run(); what it records survives the probe's failure.

    phases: seconds spent per phase or step, in order of first record.
    values: named measurements (the probe type declares which, see ValueSpec).
    details: short strings for humans (server version, final URL...).
    """

    phases: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    # Things worth a WARNING that are not a measured value (a slow step in a flow).
    warnings: list[str] = field(default_factory=list)
    # value name -> its labels, for values whose ValueSpec declares labels
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    # What happened, step by step, when someone asked (`check -v`, /debug/probe): None otherwise,
    # so a daemon's runs pay nothing for it. Redacted by the runner.
    trace: list[str] | None = None
    # When the runner's timeout ends the run, in the running loop's time (inf outside a run): a
    # probe that waits for something may stop a little before it with a reason of its own
    # ("no PONG within the timeout" as an assertion) instead of the runner's bare timeout.
    deadline: float = math.inf

    def remaining(self) -> float:
        """Seconds left before the runner's timeout (inf outside a run)."""
        return max(self.deadline - asyncio.get_running_loop().time(), 0.0) if self.deadline != math.inf else math.inf

    def note(self, line: str) -> None:
        if self.trace is not None:
            self.trace.append(line)

    def add_phase(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + max(seconds, 0.0)


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """A measured value a probe type can record, and the metric it is exported as."""

    metric: str | None  # None: usable in thresholds, not exported (e.g. a duplicate in other units)
    help: str
    # Labels the value carries, set per run in Observation.value_labels (an info metric's
    # `version="TLS 1.3"`); the series changes when they do.
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Result:
    probe: str
    type: str
    status: Status
    reason: Reason | None  # set when the probe itself failed
    message: str  # short, redacted, for humans; empty when all is well
    duration: float  # seconds, wall clock of the whole run
    started_at: float  # unix time
    phases: dict[str, float]
    values: dict[str, float]
    details: dict[str, str]
    breaches: tuple[str, ...] = ()  # threshold breaches, e.g. "dlq_depth 150 > 100"
    loop_lag: float = 0.0  # the largest event-loop lag seen during the run, seconds
    distorted: bool = False  # loop_lag exceeded the tolerance: timings may be the agent's, not the target's
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # see ValueSpec.labels
    trace: tuple[str, ...] = ()  # see Observation.trace
    # The agent could not start the run (overloaded): its own condition, not a result about the
    # target. Counted apart (probe_results_total{status="skipped"}), in no health, failure,
    # histogram or SLO; the probe's last real result keeps standing (and goes stale in time).
    skipped: bool = False

    @property
    def success(self) -> bool:
        """Same meaning as blackbox_exporter's probe_success: the probe worked and nothing critical."""
        return self.status in (Status.OK, Status.WARNING)

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "type": self.type,
            "status": self.status.label,
            "success": self.success,
            "reason": self.reason.value if self.reason else None,
            "message": self.message,
            "duration_seconds": round(self.duration, 6),
            "started_at": self.started_at,
            "phases": {k: round(v, 6) for k, v in self.phases.items()},
            "values": self.values,
            "details": self.details,
            "breaches": list(self.breaches),
            "loop_lag_seconds": round(self.loop_lag, 6),
            "distorted": self.distorted,
            **({"trace": list(self.trace)} if self.trace else {}),
        }
