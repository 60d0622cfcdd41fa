"""SLOs over probes, as a probes file declares them: a group of probes (by name or tag) and
objectives over their runs, availability (the share of runs that succeed) and latency (the share
of runs faster than a threshold). The rules that watch them are probe_agent.outputs.rules."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probe_agent.schema.fields import Duration


class BurnWindow(BaseModel):
    """Alert when the error ratio exceeds `burn` times the budget over both windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    burn: float = Field(gt=0)
    long: str
    short: str

    @field_validator("long", "short")
    @classmethod
    def _window(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[mhd]", value):
            raise ValueError(f"invalid window {value!r}: expected minutes, hours or days such as 5m, 6h, 1d")
        return value


# The SRE workbook's page conditions, and a slow burn such as the runbook's 3.6x as a ticket.
FAST_BURN = (BurnWindow(burn=14.4, long="1h", short="5m"), BurnWindow(burn=6, long="6h", short="30m"))
SLOW_BURN = (BurnWindow(burn=3.6, long="1d", short="2h"),)


class LatencyObjective(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    threshold: Duration  # a run slower than this spends latency budget
    target: float = Field(gt=0, lt=100)  # percent of runs faster than threshold, e.g. 99


class AlertNames(BaseModel):
    """The SLO runbook's alert names by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    error_fast: str = "HighErrorRateFastBurn"
    error_slow: str = "HighErrorRateSlowBurn"
    latency_fast: str = "HighLatencyFastBurn"
    latency_slow: str = "HighLatencySlowBurn"
    degraded: str = "ServiceDegraded"


class Slo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    probes: list[str] = []  # probe names
    tags: list[str] = []  # and every probe with one of these tags
    availability: float | None = Field(None, gt=0, lt=100)  # percent of runs that succeed, e.g. 99.9
    latency: LatencyObjective | None = None
    window: str = "30d"  # the SLO period, for the dashboards' error budget
    fast_burn: tuple[BurnWindow, ...] = FAST_BURN
    slow_burn: tuple[BurnWindow, ...] = SLOW_BURN
    page_severity: str = "page"
    ticket_severity: str = "ticket"
    runbook_url: str | None = None
    labels: dict[str, str] = {}  # added to every alert of this SLO
    alert_names: AlertNames = AlertNames()
    degraded_for: str = "2m"  # every probe of the SLO failing this long: the degraded alert
    # Runs inside a maintenance window: left out of the error ratio ("exclude"), or counted as
    # good runs ("good", planned downtime spends no budget but keeps the denominator).
    # Either way they never count as errors, and the latency ratio never sees them.
    maintenance: Literal["exclude", "good"] = "exclude"

    @field_validator("window")
    @classmethod
    def _period(cls, value: str) -> str:
        return BurnWindow._window(value)

    @model_validator(mode="after")
    def _objectives(self) -> Slo:
        if self.availability is None and self.latency is None:
            raise ValueError("set availability, latency or both")
        if not self.probes and not self.tags:
            raise ValueError("name its probes (probes) or tags (tags)")
        return self


def slo_members(slo: Slo, probes: list[Any]) -> list[str]:
    """The names of the probes an SLO covers, in config order."""
    return [p.name for p in probes if p.name in slo.probes or any(t in p.tags for t in slo.tags)]
