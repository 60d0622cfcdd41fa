"""How late the event loop is: the agent's clock, checked against itself.

A probe measures latency with the event loop. When the loop is busy (the
agent's own work, or more probes than a core can run), a response that
arrived in time is noticed late and the target looks slow. The monitor wakes
every TICK seconds and records how late each wake-up was; a run asks how late
the loop was during its own span (`lag_during`), so a result measured on a
late loop can say so instead of blaming the target.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

TICK = 0.02  # 50 wake-ups a second: ~1 ms of CPU per second, and a stall is seen within 20 ms
KEEP_SECONDS = 120.0  # samples kept; a run longer than this is judged by the last two minutes
DEFAULT_LAG_TOLERANCE = 0.01  # a run during which the loop was later than this is marked distorted


class LoopMonitor:
    def __init__(self, on_sample: Callable[[float], None] | None = None, tick: float = TICK):
        self.tick = tick
        # (monotonic time of the wake-up, how late it was), oldest first
        self.samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=int(KEEP_SECONDS / tick))
        self.heartbeat = time.monotonic()
        self._due = self.heartbeat + tick
        self._on_sample = on_sample
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            self._due = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            lag = max(now - self._due, 0.0)
            self.heartbeat = now
            self.samples.append((now, lag))
            if self._on_sample is not None:
                self._on_sample(lag)

    def lag_during(self, start: float, end: float | None = None) -> float:
        """The largest lag of the loop between `start` and `end` (monotonic), now included.

        A stall that ended just before `end` may not have a sample yet: the monitor's
        own wake-up is then overdue, and by how much is a lower bound of the stall."""
        end = time.monotonic() if end is None else end
        worst = max(end - self._due, 0.0) if self._task is not None else 0.0
        for at, lag in reversed(self.samples):
            if at < start:
                break
            if lag > worst:
                worst = lag
        return worst
