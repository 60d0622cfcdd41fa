"""The status page's per-probe history: what it counts, how it forgets, and what it costs."""

from __future__ import annotations

import gc
import tracemalloc

from probe_agent.runtime.history import BUCKET_SECONDS, BUCKETS, INCIDENTS, ProbeHistory

T0 = 1_800_000_000.0  # a Unix time on a slot boundary


def test_uptime_counts_the_last_day_only() -> None:
    history = ProbeHistory()
    for i in range(10):
        history.count(i != 0, now=T0 + i)  # 9 of 10 in the first slot
    assert history.uptime(now=T0 + 10) == 0.9
    later = T0 + BUCKET_SECONDS
    history.count(True, now=later)
    assert history.uptime(now=later) == 10 / 11
    slots = history.slots(now=later)
    assert len(slots) == BUCKETS and slots[-2:] == [0.9, 1.0] and slots[0] is None
    # a day on, the first slot's place is taken by the new day: its runs are forgotten
    day_later = T0 + BUCKETS * BUCKET_SECONDS
    history.count(False, now=day_later)
    assert history.uptime(now=day_later) == 1 / 2  # the second slot's run and this one
    assert history.uptime(now=day_later + BUCKETS * BUCKET_SECONDS) is None


def test_incidents_keep_the_last_ones() -> None:
    history = ProbeHistory()
    assert list(history.incidents) == []
    for i in range(INCIDENTS + 5):
        history.change("ok", "failing", f"run {i}", now=T0 + i)
    incidents = list(history.incidents)
    assert len(incidents) == INCIDENTS and incidents[0].message == "run 5"


def test_memory_per_probe_is_bounded() -> None:
    """About 1.1 KB a probe with a full day of runs, whatever the interval; incidents only for
    the probes that change. docs/status-page.md states these figures."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        histories = [ProbeHistory() for _ in range(200)]
        for history in histories:
            for slot in range(BUCKETS):
                for run in range(3):
                    history.count(run != 0, now=T0 + slot * BUCKET_SECONDS + run)
        gc.collect()
        full_day = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename")) / len(histories)
    finally:
        tracemalloc.stop()
    print(f"history per probe: {full_day:.0f} bytes")
    assert full_day < 1200
