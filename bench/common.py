"""Shared bits of the benchmarks: CPU-time measurement in interleaved rounds, and the report."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable


async def cpu_ms_per_op(op: Callable[[], Awaitable[object]], count: int, concurrency: int) -> float:
    """CPU milliseconds of this process per call of `op`, with `concurrency` calls in flight."""
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            await op()

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - start) * 1000 / count


async def compare(
    name: str,
    baseline: Callable[[], Awaitable[object]],
    candidate: Callable[[], Awaitable[object]],
    count: int,
    concurrency: int,
    rounds: int,
) -> float:
    """Run baseline and candidate in alternating rounds (the machine is noisy), print medians and ratio."""
    await cpu_ms_per_op(baseline, max(count // 10, 10), concurrency)  # warm up both paths
    await cpu_ms_per_op(candidate, max(count // 10, 10), concurrency)
    base, cand = [], []
    for _ in range(rounds):
        base.append(await cpu_ms_per_op(baseline, count, concurrency))
        cand.append(await cpu_ms_per_op(candidate, count, concurrency))
    b, c = statistics.median(base), statistics.median(cand)
    ratio = c / b
    print(f"{name}")
    print(f"  baseline : {b:.3f} ms CPU per op   (rounds: {', '.join(f'{x:.3f}' for x in base)})")
    print(f"  agent    : {c:.3f} ms CPU per op   (rounds: {', '.join(f'{x:.3f}' for x in cand)})")
    print(f"  ratio    : {ratio:.2f}x   ({count} ops x {rounds} rounds, concurrency {concurrency})")
    return ratio


def reproduce_line() -> str:
    return "reproduce: .venv/bin/python " + " ".join(sys.argv)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()
