"""`probe-agent check`: run selected probes once, concurrently, through the same runner as the daemon."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from probe_agent.config.loader import AgentConfig, did_you_mean
from probe_agent.core.errors import ConfigError
from probe_agent.core.loopmonitor import LoopMonitor
from probe_agent.core.results import Result
from probe_agent.probes import close_shared
from probe_agent.probes.base import ProbeConfig
from probe_agent.runtime.runner import ProbeHandle, run_probe


def select(config: AgentConfig, names: Sequence[str], tags: Sequence[str]) -> list[ProbeConfig]:
    known = config.all_probe_names or tuple(p.name for p in config.probes)
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError([f"--probe {n}: no probe with that name{did_you_mean(n, known)}" for n in missing])
    chosen = [p for p in config.probes if (not names or p.name in names) and (not tags or set(tags) & set(p.tags))]
    if not chosen:
        raise ConfigError(["no probe matches the selection"])
    return chosen


async def run_once(config: AgentConfig, handles: list[ProbeHandle], trace: bool = False) -> list[Result]:
    limit = asyncio.Semaphore(config.max_concurrency)
    monitor = LoopMonitor()  # `check` marks runs measured on a late loop too
    monitor.start()

    async def one(handle: ProbeHandle) -> Result:
        async with limit:
            return await run_probe(handle, monitor, config.loop_lag_tolerance, trace=trace)

    try:
        return list(await asyncio.gather(*(one(h) for h in handles)))
    finally:
        monitor.stop()
        await asyncio.gather(*(h.aclose() for h in handles))
        await close_shared()


def mark_maintenance(config: AgentConfig, results: Sequence[Result]) -> None:
    """Name the scheduled window a probe is in. The status stays what the run found: `check`
    tells the truth at 3 a.m.; not paging for planned work is the alerting's job."""
    if not config.maintenance:
        return
    import datetime as dt

    from probe_agent.schema.maintenance import active_windows, window_of

    active = active_windows(config.maintenance, dt.datetime.now(dt.UTC))
    tags = {p.name: p.tags for p in config.probes}
    for result in results:
        window = window_of(result.probe, tags.get(result.probe, []), active) if active else None
        if window is not None:
            result.details["maintenance"] = window
