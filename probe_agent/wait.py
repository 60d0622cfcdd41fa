"""`probe-agent wait`: rerun the selected probes until each has passed `success_threshold` times
in a row, or the timeout comes. What `docker compose up --wait`, wait-for-it and CI gates do,
with the same probes and runner as the daemon and `check`."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TextIO

from probe_agent.config import AgentConfig
from probe_agent.loopmonitor import LoopMonitor
from probe_agent.model import Result
from probe_agent.probes import close_shared
from probe_agent.runner import ProbeHandle, run_probe


class Progress:
    """One line per change of a probe's state (a terminal and a CI log read the same)."""

    def __init__(self, out: TextIO):
        self.out = out
        self.shown: dict[str, str] = {}

    def update(self, handle: ProbeHandle, result: Result, streak: int, elapsed: float) -> None:
        needed = handle.config.success_threshold
        if result.success:
            state = "ready" if streak >= needed else f"passing {streak}/{needed}"
        else:
            state = f"{result.status.label}: {result.reason.value + ': ' if result.reason else ''}{result.message}"
        if self.shown.get(handle.name) == state:
            return
        self.shown[handle.name] = state
        self.out.write(f"{elapsed:6.1f}s  {handle.name}: {state}\n")
        self.out.flush()


async def wait_until_ready(
    config: AgentConfig,
    handles: list[ProbeHandle],
    give_up_after: float,
    pause: float,
    on_result: Callable[[ProbeHandle, Result, int, float], None],
) -> tuple[bool, list[Result]]:
    """Run every probe not yet ready, at most once per `pause`, until all are; returns whether
    they all got ready and the last result of each."""
    streaks = {h.name: 0 for h in handles}
    last: dict[str, Result] = {}
    limit = asyncio.Semaphore(config.max_concurrency)
    monitor = LoopMonitor()
    monitor.start()
    started = time.monotonic()

    def ready(handle: ProbeHandle) -> bool:
        return streaks[handle.name] >= handle.config.success_threshold

    async def one(handle: ProbeHandle) -> None:
        async with limit:
            result = await run_probe(handle, monitor, config.loop_lag_tolerance)
        streaks[handle.name] = streaks[handle.name] + 1 if result.success else 0
        last[handle.name] = result
        on_result(handle, result, streaks[handle.name], time.monotonic() - started)

    try:
        async with asyncio.timeout(give_up_after):
            while pending := [h for h in handles if not ready(h)]:
                round_started = time.monotonic()
                await asyncio.gather(*(one(h) for h in pending))
                if any(not ready(h) for h in handles):
                    await asyncio.sleep(max(0.0, pause - (time.monotonic() - round_started)))
        return True, [last[h.name] for h in handles]
    except TimeoutError:
        return False, [last[h.name] for h in handles if h.name in last]
    finally:
        monitor.stop()
        await asyncio.gather(*(h.aclose() for h in handles))
        await close_shared()


def progress(out: TextIO | None = None) -> Progress:
    return Progress(out or sys.stderr)
