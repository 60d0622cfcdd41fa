"""`probe-agent wait`: rerun the selected probes until each has passed `success_threshold` times
in a row, or the timeout comes. What `docker compose up --wait`, wait-for-it and CI gates do,
with the same probes and runner as the daemon and `check`."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TextIO

from probe_agent.config.loader import AgentConfig
from probe_agent.core.loopmonitor import LoopMonitor
from probe_agent.core.results import Result
from probe_agent.probes import close_shared
from probe_agent.runtime.runner import ProbeHandle, run_probe


def describe(handle: ProbeHandle, result: Result, streak: int) -> str:
    needed = handle.config.success_threshold
    if result.success:
        return "ready" if streak >= needed else f"passing {streak}/{needed}"
    return f"{result.status.label}: {result.reason.value + ': ' if result.reason else ''}{result.message}"


class Progress:
    """One line per change of a probe's state: what a CI log or a pipe gets."""

    def __init__(self, out: TextIO):
        self.out = out
        self.shown: dict[str, str] = {}

    def update(self, handle: ProbeHandle, result: Result, streak: int, elapsed: float) -> None:
        state = describe(handle, result, streak)
        if self.shown.get(handle.name) == state:
            return
        self.shown[handle.name] = state
        self.out.write(f"{elapsed:6.1f}s  {handle.name}: {state}\n")
        self.out.flush()


class LiveProgress:
    """On a terminal: a line per probe, redrawn in place, and a last line with the time waited
    and how many are ready. Lines are cut at the terminal's width, so that none wraps and the
    cursor arithmetic stays true."""

    def __init__(self, out: TextIO, names: list[str], width: int):
        self.out = out
        self.width = width
        self.states = dict.fromkeys(names, "waiting for its first run")
        self.ready: set[str] = set()
        self.drawn = 0

    def update(self, handle: ProbeHandle, result: Result, streak: int, elapsed: float) -> None:
        self.states[handle.name] = describe(handle, result, streak)
        if streak >= handle.config.success_threshold:
            self.ready.add(handle.name)
        else:
            self.ready.discard(handle.name)
        name_width = max(len(name) for name in self.states)
        lines = [
            f"{'✔' if name in self.ready else '…'} {name.ljust(name_width)}  {state}"
            for name, state in self.states.items()
        ]
        lines.append(f"{elapsed:.1f}s, {len(self.ready)} of {len(self.states)} ready")
        text = "".join("\x1b[2K" + line[: self.width - 1] + "\n" for line in lines)
        # back to the first line of the last drawing, then over it
        self.out.write((f"\x1b[{self.drawn}F" if self.drawn else "") + text)
        self.out.flush()
        self.drawn = len(lines)


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


def progress(names: list[str], out: TextIO | None = None) -> Progress | LiveProgress:
    """Redrawn in place on a terminal that can (and is tall enough for one line per probe),
    else a line per change."""
    import os

    stream = out or sys.stderr
    try:  # the size of the terminal the progress goes to (standard output may be a pipe)
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        size = os.terminal_size((0, 0))
    if (
        stream.isatty()
        and os.environ.get("TERM", "dumb") != "dumb"
        and len(names) + 2 <= size.lines
        and size.columns >= 20
    ):
        return LiveProgress(stream, names, size.columns)
    return Progress(stream)
