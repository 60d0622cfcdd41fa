"""Runs probes on their intervals.

Fixed rate: run k of a probe is planned at origin + offset + k * interval,
where the offset is a stable fraction of the interval taken from the probe's
name, so a thousand probes do not fire at once and a restart keeps the same
phase. A run that ends late skips the ticks it missed (never queues them),
so one probe never runs twice at once. The first run comes within
STARTUP_SPREAD seconds so /health is not pending for a whole interval.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Callable

from probe_agent.metrics import AgentMetrics
from probe_agent.model import Result
from probe_agent.runner import ProbeHandle, run_probe

log = logging.getLogger("probe_agent.scheduler")

STARTUP_SPREAD = 5.0


def stable_fraction(name: str) -> float:
    return zlib.crc32(name.encode()) / 2**32


class Scheduler:
    def __init__(self, metrics: AgentMetrics, on_result: Callable[[Result], None], max_concurrency: int):
        self._metrics = metrics
        self._on_result = on_result
        self._limit = asyncio.Semaphore(max_concurrency)
        self._stopping = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, handles: list[ProbeHandle]) -> None:
        origin = time.monotonic()
        for handle in handles:
            self._tasks[handle.name] = asyncio.create_task(self._loop(handle, origin), name=f"probe:{handle.name}")

    def alive(self) -> bool:
        return not self._stopping.is_set() and all(not t.done() for t in self._tasks.values())

    async def stop(self, grace: float) -> None:
        """Stop planning runs; let runs in flight finish within `grace` seconds, then cancel them."""
        self._stopping.set()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("cancelled %d probe runs still in flight after %.1fs", len(pending), grace)
            await asyncio.wait(pending, timeout=5)

    async def _loop(self, handle: ProbeHandle, origin: float) -> None:
        interval = handle.config.interval
        fraction = stable_fraction(handle.name)
        offset = fraction * interval
        planned = origin + fraction * min(interval, STARTUP_SPREAD)
        while True:
            delay = planned - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                    return
                except TimeoutError:
                    pass
            if self._stopping.is_set():
                return
            async with self._limit:
                self._metrics.scheduler_lag.observe(max(time.monotonic() - planned, 0.0))
                self._metrics.in_flight.inc()
                try:
                    result = await run_probe(handle)
                finally:
                    self._metrics.in_flight.dec()
            try:
                self._on_result(result)
            except Exception:  # a bug in reporting must not stop this probe's schedule
                log.exception("recording the result of probe %s failed", handle.name)
            # Next tick on the grid strictly after now; ticks in between are skipped, not queued.
            ticks_done = math.floor((time.monotonic() - origin - offset) / interval)
            following = origin + offset + (ticks_done + 1) * interval
            if following - planned > interval * 1.5:
                self._metrics.skipped_runs.inc(round((following - planned) / interval) - 1)
            planned = following
