"""The health vocabulary, one enum per concept, used by every output (/health, the status
page, `check`, remediation): a probe's health, and the agent's verdict over all its probes."""

from __future__ import annotations

import enum


class Health(enum.StrEnum):
    """One probe's health, as /health and the status page show it."""

    PENDING = "pending"  # no run finished yet: not known to be ok
    OK = "ok"
    FAILING = "failing"
    STALE = "stale"  # the last result is too old to vouch for anything
    MAINTENANCE = "maintenance"  # in a maintenance window: runs, but vouches for nothing and fails nothing


class Verdict(enum.StrEnum):
    """The agent's verdict over all its probes (/health's `status`). Whether it fails /health
    (503) depends on which probes it comes from: see probe_agent.runtime.state.Tally."""

    OK = "ok"
    DEGRADED = "degraded"  # a probe fails or warns, none of them critical
    PENDING = "pending"  # a probe has not run yet
    FAILING = "failing"  # a critical probe fails or is stale
