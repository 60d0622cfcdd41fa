"""The one interface every probe type implements.

A probe type talks to one kind of target and measures. It does not time the
whole run, enforce the deadline, judge thresholds, log or touch metrics: the
runner does that once for all types (probe_agent.runner).
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from probe_agent.config import ProbeConfig
from probe_agent.errors import ProbeError
from probe_agent.model import Observation, ValueSpec

C = TypeVar("C", bound=ProbeConfig)


class Probe(Generic[C]):
    config_model: ClassVar[type[ProbeConfig]]
    # Values this type may record, by name; each becomes its own metric.
    values: ClassVar[dict[str, ValueSpec]] = {}
    # Where per-phase timings go; the label says what the key means (phase, step).
    phase_metric: ClassVar[str] = ""
    phase_label: ClassVar[str] = "phase"

    def __init__(self, config: C):
        self.config = config

    async def run(self, obs: Observation) -> None:
        """Do one probe; record into `obs`; raise ProbeError (or let a library error out) on failure."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the probe keeps between runs (sessions, pools)."""

    @classmethod
    async def aclose_shared(cls) -> None:
        """Release what all probes of this type share on the running loop (see close_shared)."""

    @staticmethod
    def translate(exc: BaseException) -> ProbeError | None:
        """Map this type's library exceptions to a Reason and message; None leaves it to the generic mapping.

        The runner calls it for every exception that is not already a ProbeError, so a
        probe's run() lets library errors propagate instead of catching them itself."""
        return None
