"""Runs probes on their intervals, fairly.

Fixed rate: run k of a probe is planned at origin + offset + k * interval,
where the offset is a stable fraction of the interval taken from the probe's
name, so a thousand probes do not fire at once and a restart keeps the same
phase. A run that ends late skips the ticks it missed (never queues them),
so one probe never runs twice at once. The first run of a probe comes within
STARTUP_SPREAD seconds of it being added (the probes of the start: within
STARTUP_WINDOW of launch), so /health is not pending for a
whole interval.

Probes come and go one by one (`add`, `remove`): a reload touches only the
probes that changed, and the others keep their schedule and runs in flight.

A sleeping probe costs nothing but its place in a heap: one loop timer, set
for the earliest tick, starts each run as a task of its own. (A task per
probe that sleeps between runs keeps a coroutine, a future, a timer handle
and a context alive per probe for a whole interval; at 10,000 probes these
fill the oldest garbage-collector generation, and each full collection then
held the loop for ~100 ms.)

Fairness: a hung target must cost its own probes, not everyone's.
- Runs against one target (host:port) share `per_target` slots, so 200 probes
  of one black-holed host hold at most that many.
- A probe whose last run timed out is a suspect: it runs from a small pool of
  its own, so many hung hosts cannot take the slots healthy probes need.
- A run waits for slots at most until its next tick; then the tick is
  skipped and counted with its cause (`target`, `concurrency`), never queued,
  and still gives a result of its own ("not run: ..."): a probe that cannot
  run must not read as pending, or as its last good result.

Honest under overload: a tick the agent could not start is the agent's condition, UNKNOWN
with reason internal, unless runs against the same target have been timing out (then the
target is what holds its slots, and the tick is CRITICAL, reason timeout, as a run of it would
be). Past saturation, when the runs already waiting for the slots a due tick needs would
take longer than its interval to get through them (waiting x the mean run time / slots), the
tick is shed at once without a task, a timer or a wait (cause `overload`): the core goes to
the runs that can still start, not to ticks that never will.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from probe_agent.core.errors import Reason
from probe_agent.core.loopmonitor import DEFAULT_LAG_TOLERANCE, LoopMonitor
from probe_agent.core.results import Result, Status
from probe_agent.core.slots import Slots
from probe_agent.runtime.metrics import AgentMetrics
from probe_agent.runtime.runner import ProbeHandle, drop_tracebacks, not_run, run_probe
from probe_agent.runtime.state import stale_after

log = logging.getLogger("probe_agent.runtime.scheduler")

STARTUP_SPREAD = 5.0
# The probes of the start (added within this long of the process's launch) begin their first runs
# by then: the agent spends a second or more of the 5 s reading, validating and building 10,000
# probes, and the spread over the rest has every probe's result within 5 s of launch (it took
# 6.5-7 s with the whole spread after the build). Never less than MIN_SPREAD.
STARTUP_WINDOW = 4.0
MIN_SPREAD = 1.0
DEFAULT_PER_TARGET = 32
# A run that waited for a slot longer than this share of its interval is counted as delayed.
DELAYED_SHARE = 0.1
# A probe whose loop has not moved on for interval + timeout + this is stuck (liveness fails).
STUCK_MARGIN = 30.0
# The mean wall time of a run, for the backlog a due tick would wait behind, moves by this share.
RUN_TIME_WEIGHT = 0.02
# A due tick is shed when the runs already waiting for its slots would take this share of its
# interval to get through them. At a whole interval, the estimate (a mean) let a fifth of the ticks
# that got a task wait the interval out and give up anyway, each with its task, timer and result.
SHED_SHARE = 0.5
# Past saturation one decision to shed may cover several ticks of the probe (each one counted as
# shed): as many as the agent sheds for each tick it runs, over the last STRIDE_WINDOW seconds, up
# to MAX_SHED_STRIDE. A shed tick costs its heap work and a result (~9 us in a loaded daemon's
# cache); at 2.7x saturation 12,000 of them a second took a tenth of the core from the runs.
# A stride never reaches past the moment the probe's result would turn stale (its next chance
# comes before it, with time for a run), nor covers a probe that has not run yet.
MAX_SHED_STRIDE = 4
FIRST_RUN_RETRY = 1.0  # seconds at most before a first run put off by a backlog is tried again
STRIDE_WINDOW = 1.0


SHED_TARGET = (
    "not run: the agent is overloaded: the runs waiting for this target's slots would not get through"
    " them before its next tick; not a fault of the target"
)
SHED_POOL = (
    "not run: the agent is overloaded: the runs waiting for its slots would not get through them before"
    " this probe's next tick; not a fault of the target"
)


def stable_fraction(name: str) -> float:
    return zlib.crc32(name.encode()) / 2**32


@dataclass(slots=True, eq=False)
class _Scheduled:
    handle: ProbeHandle
    target: str
    grid: float  # tick k is planned at grid + k * interval
    tick: int = 0  # the tick the next (or current) run stands for
    due: float = 0.0  # monotonic time of the next run (or of the current run's tick)
    suspect: bool = False  # the last run timed out
    removed: bool = False
    finished: float = -math.inf  # monotonic time its last run (not a skipped tick) ended
    pending: bool = True  # no result yet (a probe a reload rebuilt keeps the one it had)
    task: asyncio.Task[None] | None = field(default=None, repr=False)  # the run in flight, if any
    sequence: int = 0  # breaks ties between equal due times in the heap
    # (cause, result) of the last tick shed since the last run: the next shed ticks say the same
    shed: tuple[str, Result] | None = field(default=None, repr=False)

    def tick_after(self, now: float) -> int:
        # Counted in whole ticks, never by comparing floats: a timer may fire a little early
        # (uvloop's have millisecond resolution), and a quick run must not then serve its
        # tick twice.
        return max(self.tick + 1, math.floor((now - self.grid) / self.handle.config.interval) + 1)


def _tick_before_a_whole_interval(entry: _Scheduled, first: float) -> int:
    """The tick a first run at `first` stands for: the next is the first grid tick a whole
    interval after it (less 1%, for timers' resolution). Standing for the tick just before it
    instead ran a 10-minute probe twice within seconds when its grid offset lay just after it."""
    interval = entry.handle.config.interval
    return math.ceil((first + 0.99 * interval - entry.grid) / interval) - 1


class _Skip(Exception):
    def __init__(self, cause: str):
        self.cause = cause


def _release_cancellation(task: asyncio.Task[None]) -> None:
    """A cancelled task keeps its CancelledError until someone asks for its result, and the
    error's traceback holds the run's frames, the probe and its client's request objects: a cycle
    per cancelled run that only the garbage collector frees, and that the gc.freeze() closing a
    reload (which is what cancels them) would keep for good. Asking for the result hands the error
    over; without its traceback, reference counting frees the rest at once."""
    if task.cancelled():
        try:
            task.result()
        except asyncio.CancelledError as exc:
            drop_tracebacks(exc)


class Scheduler:
    def __init__(
        self,
        metrics: AgentMetrics,
        on_result: Callable[[Result], None],
        max_concurrency: int,
        *,
        per_target: int = DEFAULT_PER_TARGET,
        monitor: LoopMonitor | None = None,
        lag_tolerance: float = DEFAULT_LAG_TOLERANCE,
        launched: float = -math.inf,
    ):
        """`launched`: the process's launch (monotonic), for the first runs of the start."""
        self._launched = launched
        self._metrics = metrics
        self._shed_count = metrics.skipped_runs.labels("overload")  # once, not a label lookup per shed tick
        self._on_result = on_result
        self._origin = time.monotonic()
        self._slots = Slots(max_concurrency)
        self._max_concurrency = max_concurrency
        self._waiting = 0  # runs waiting for a pool slot
        self._target_waiting: dict[str, int] = {}  # target -> runs waiting for one of its slots
        self.last_shed = -math.inf  # monotonic time of the last tick shed for overload
        self._shed_stride = 1  # ticks one decision to shed covers (see MAX_SHED_STRIDE)
        self._stride_since = -math.inf
        self._window_shed = 0  # ticks shed and runs started since _stride_since
        self._window_started = 0
        self._run_seconds = 0.01  # mean wall time of runs that did not time out
        self._target_timed_out: dict[str, float] = {}  # target -> when a run against it last timed out
        # Suspects get a pool of their own, a quarter of the size: enough to notice a recovery.
        self._suspect_slots = Slots(max(1, max_concurrency // 4))
        self._per_target = per_target
        self._target_slots: dict[str, Slots] = {}
        self._target_users: dict[str, int] = {}
        self._monitor = monitor
        self._lag_tolerance = lag_tolerance
        self._stopping = False
        self._probes: dict[str, _Scheduled] = {}
        # (due, sequence, probe), by due time. Tuples compare in C: the probes themselves with a
        # Python __lt__ cost two calls per level of the heap for every tick, 10 us a tick in a
        # loaded daemon's cache, 11% of its core at 8,000 shed ticks a second.
        self._heap: list[tuple[float, int, _Scheduled]] = []
        self._sequence = 0
        self._removed_in_heap = 0  # removed probes still in the heap, holding their handles
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = math.inf
        self._running: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, _Scheduled] = {}  # probes whose run is in flight

    # --- membership -------------------------------------------------------

    def add(self, handle: ProbeHandle, resume: bool = False) -> None:
        """Schedule a probe: its first run early, within the start-up spread; with `resume` (a
        probe rebuilt by a reload that has a result already), at its next grid tick, as if it
        had never stopped: a reload adds no run."""
        if handle.name in self._probes:
            raise ValueError(f"probe {handle.name!r} is already scheduled")
        target = handle.target
        self._target_users[target] = self._target_users.get(target, 0) + 1
        if target not in self._target_slots:
            self._target_slots[target] = Slots(self._per_target)
        interval = handle.config.interval
        fraction = stable_fraction(handle.name)
        entry = _Scheduled(handle, target, self._origin + fraction * interval)
        now = time.monotonic()
        spread = STARTUP_SPREAD
        if now < self._launched + STARTUP_WINDOW:
            spread = max(MIN_SPREAD, self._launched + STARTUP_WINDOW - now)
        first = now + fraction * min(interval, spread)
        # the first run comes early, within the start-up spread
        entry.tick = _tick_before_a_whole_interval(entry, first)
        if resume:
            entry.pending = False
            entry.tick = math.floor((time.monotonic() - entry.grid) / interval)
            first = entry.grid + (entry.tick + 1) * interval
        self._probes[handle.name] = entry
        self._push(entry, first)

    def start(self, handles: list[ProbeHandle]) -> None:
        for handle in handles:
            self.add(handle)

    def remove(self, name: str) -> ProbeHandle | None:
        """Stop the probe now (a run in flight is cancelled: its result is moot); return its handle to close."""
        entry = self._probes.pop(name, None)
        if entry is None:
            return None
        entry.removed = True  # its heap entry is dropped when it comes up, or by compact()
        if self._in_flight.get(name) is entry:
            del self._in_flight[name]
        if entry.task is not None:
            entry.task.cancel()  # in flight, so not in the heap: it is not pushed back
            entry.task.add_done_callback(_release_cancellation)
        else:
            self._removed_in_heap += 1
        self._target_users[entry.target] -= 1
        if not self._target_users[entry.target]:
            del self._target_users[entry.target]
            del self._target_slots[entry.target]
            self._target_timed_out.pop(entry.target, None)
            self._target_waiting.pop(entry.target, None)
        return entry.handle

    # --- the timer ------------------------------------------------------------

    def compact(self) -> None:
        """Drop removed probes from the heap now, not when their tick comes: a probe of a daily
        interval removed by a reload would keep its handle, config and client for a day, and a
        config rewritten every minute would pile them up. O(n), so only once they are many."""
        if self._removed_in_heap and self._removed_in_heap * 4 >= len(self._heap):
            self._heap = [item for item in self._heap if not item[2].removed]
            heapq.heapify(self._heap)
            self._removed_in_heap = 0

    def _push(self, entry: _Scheduled, due: float) -> None:
        entry.due = due
        self._sequence += 1
        entry.sequence = self._sequence
        heapq.heappush(self._heap, (due, self._sequence, entry))
        if due < self._timer_due and not self._stopping:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_later(max(due - time.monotonic(), 0.0), self._dispatch)

    def _dispatch(self) -> None:
        """Start every run that is due, then set the timer for the next."""
        self._timer, self._timer_due = None, math.inf
        if self._stopping:
            return
        clock = time.monotonic()
        now = clock + 0.001  # a timer of millisecond resolution may fire that early
        heap = self._heap
        # How long the runs already waiting take to get through the slots, at the mean run time.
        # The runs started by this very call count too (their tasks have not begun to wait yet):
        # without them, a thousand ticks due at once all saw the same short backlog, all got a
        # task, and most waited their interval out. (Those that will find a free slot are counted
        # as waiting: an error of one mean run time at most.)
        run_seconds = self._run_seconds
        pool_wait = self._waiting * run_seconds / self._max_concurrency
        started: dict[str, int] = {}  # target -> runs started by this call
        shed_ticks = 0
        while heap and heap[0][0] <= now:
            entry = heap[0][2]
            if entry.removed:
                heapq.heappop(heap)
                self._removed_in_heap -= 1
                continue
            interval = entry.handle.config.interval
            target_waiting = self._target_waiting.get(entry.target, 0) + started.get(entry.target, 0)
            if target_waiting * run_seconds / self._per_target >= SHED_SHARE * interval:
                shed: str | None = "target"
            # suspects have a pool of their own: they wait behind no backlog of the main one
            elif pool_wait >= SHED_SHARE * interval and not entry.suspect:
                shed = "concurrency"
            else:
                shed = None
            if shed is not None and entry.pending and not (shed == "target" and self._hanging(entry)):
                # Never run: nothing to say yet, and its next tick may be an interval away (at start,
                # 50,000 probes left 105 first runs pending for 110 s). Its first run is tried again
                # when the runs ahead would have got through, or in FIRST_RUN_RETRY if sooner (the
                # estimate is of a mean run time, high while the agent starts), with no result; a
                # probe that stays pending shows the overload in /health and the pending count.
                backlog = target_waiting * run_seconds / self._per_target if shed == "target" else pool_wait
                due = clock + min(max(backlog, 0.05), FIRST_RUN_RETRY, interval)
                entry.tick = _tick_before_a_whole_interval(entry, due)
                self._requeue_top(entry, due)
                self.last_shed = clock
                continue
            if shed is not None:
                shed_ticks += self._shed(entry, shed, clock)
                continue
            heapq.heappop(heap)
            self._window_started += 1
            started[entry.target] = started.get(entry.target, 0) + 1
            if not entry.suspect:
                pool_wait += run_seconds / self._max_concurrency
            entry.shed = None  # a shed tick after this run says so with its own time
            entry.task = task = asyncio.create_task(self._run(entry), name=f"probe:{entry.handle.name}")
            self._in_flight[entry.handle.name] = entry
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        if shed_ticks:
            self.last_shed = clock
            self._shed_count.inc(shed_ticks)
            self._window_shed += shed_ticks
        if clock - self._stride_since >= STRIDE_WINDOW:
            self._update_stride(clock)
        if heap:
            self._arm(heap[0][0])

    def handles(self) -> dict[str, ProbeHandle]:
        return {name: entry.handle for name, entry in self._probes.items()}

    # --- health of the scheduler itself -------------------------------------

    def alive(self) -> bool:
        """The timer is set while there is anything to run (a dead timer stops every probe)."""
        armed = self._timer is not None and not self._timer.cancelled()
        return not self._stopping and (armed or not self._heap or bool(self._running))

    def stuck(self, now: float | None = None) -> list[str]:
        """Probes whose schedule has not moved on for far longer than it allows. A probe is
        either in flight (its run may hang) or in the heap (its timer may not fire): the runs
        in flight are looked at one by one, the heap only when its earliest entry is late
        (then the timer itself is not firing). The watchdog asks every second, so this must
        not walk every probe: at 50,000 that walk was a tenth of an idle core."""
        now = time.monotonic() if now is None else now

        def late(entry: _Scheduled) -> bool:
            config = entry.handle.config
            return bool(entry.due) and now - entry.due > config.interval + config.timeout + STUCK_MARGIN

        found = [entry.handle.name for entry in self._in_flight.values() if late(entry)]
        # the earliest due time in the heap (a removed entry's too) bounds everyone's lateness
        if self._heap and now - self._heap[0][0] > STUCK_MARGIN:  # the timer is behind: look at all
            found += [e.handle.name for _, _, e in self._heap if not e.removed and e.task is None and late(e)]
        return found

    async def stop(self, grace: float) -> None:
        """Stop planning runs; let runs in flight finish within `grace` seconds, then cancel them."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._running)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("cancelled %d probe runs still in flight after %.1fs", len(pending), grace)
            await asyncio.wait(pending, timeout=5)

    # --- one probe's loop ----------------------------------------------------

    async def _run(self, entry: _Scheduled) -> None:
        """One tick of one probe: wait for slots (until the next tick at most), run, record, plan the next."""
        handle = entry.handle
        planned = entry.due
        next_tick = entry.tick_after(time.monotonic())  # waiting for slots gives up when it comes
        asked_at, asked = time.time(), time.monotonic()
        try:
            result = await self._run_when_slots_free(entry, planned, entry.grid + next_tick * handle.config.interval)
            next_tick = entry.tick_after(time.monotonic())
        except _Skip as skip:
            self._metrics.skipped_runs.labels(skip.cause).inc()
            result = self._skipped(entry, skip.cause, asked_at, time.monotonic() - asked)
        if not result.skipped:
            entry.finished = time.monotonic()
            entry.pending = False
            entry.suspect = result.reason is Reason.TIMEOUT
            if not entry.suspect and not result.message.startswith("not run"):
                self._run_seconds += RUN_TIME_WEIGHT * (result.duration - self._run_seconds)
        if entry.suspect:
            self._target_timed_out[entry.target] = time.monotonic()
        try:
            self._on_result(result)
        except Exception:  # a bug in reporting must not stop this probe's schedule
            log.exception("recording the result of probe %s failed", handle.name)
        # The next tick after now; ticks in between are skipped, not queued.
        if next_tick - entry.tick > 1:
            self._metrics.skipped_runs.labels("overrun").inc(next_tick - entry.tick - 1)
        entry.tick = next_tick
        entry.task = None
        if self._in_flight.get(handle.name) is entry:
            del self._in_flight[handle.name]
        if not entry.removed:
            self._push(entry, entry.grid + next_tick * handle.config.interval)

    def _requeue_top(self, entry: _Scheduled, due: float) -> None:
        # the entry is still the heap's top, due later now: one sift down, not a pop and a push
        self._sequence += 1
        entry.due, entry.sequence = due, self._sequence
        heapq.heapreplace(self._heap, (due, self._sequence, entry))

    def _update_stride(self, clock: float) -> None:
        # ticks shed per run started: how many of a probe's ticks are shed for each it runs
        shed, started = self._window_shed, self._window_started
        stride = math.ceil(shed / started) if started else (MAX_SHED_STRIDE if shed else 1)
        self._shed_stride = max(1, min(MAX_SHED_STRIDE, stride))
        self._stride_since, self._window_shed, self._window_started = clock, 0, 0

    def _shed(self, entry: _Scheduled, slots: str, now: float) -> int:
        """Skip a due tick without starting it: more runs already wait for the `slots` it needs
        (`target`, `concurrency`) than can run before its next tick. Moves the entry, the heap's
        top, on to its next tick.

        Past saturation most ticks are shed, so this is the agent's cost per tick there: the same
        probe's shed ticks share one result until it runs again (only the count moves), and one
        decision covers as many of its ticks as the agent sheds for each it runs (the stride).
        Returns the ticks shed; the caller counts them."""
        cached = entry.shed
        if cached is not None and cached[0] == slots and not (slots == "target" and self._hanging(entry)):
            result = cached[1]
        else:
            result = self._skipped(entry, slots, time.time(), 0.0, shed=True)
            entry.shed = (slots, result) if result.skipped else None
        config = entry.handle.config
        interval = config.interval
        tick = entry.tick + 1
        due = entry.grid + tick * interval
        if due <= now:  # more than a tick behind (a stalled loop): the next one after now
            tick = entry.tick_after(now)
            due = entry.grid + tick * interval
        # more ticks of the stride, while the next chance still comes before the result turns
        # stale; a hanging target's ticks (CRITICAL, its fault) are shed one by one
        extra = 0
        if self._shed_stride > 1 and result.skipped:
            room = (entry.finished + stale_after(config) - config.timeout - due) // interval
            extra = int(min(self._shed_stride - 1, room)) if room >= 1 else 0
        try:
            for _ in range(1 + extra):
                self._on_result(result)
        except Exception:  # a bug in reporting must not stop this probe's schedule
            log.exception("recording the result of probe %s failed", entry.handle.name)
        entry.tick = tick + extra
        self._requeue_top(entry, due + extra * interval)
        return 1 + extra

    def _hanging(self, entry: _Scheduled) -> bool:
        """Runs against this probe's target timed out lately: the target holds its slots."""
        config = entry.handle.config
        since = time.monotonic() - self._target_timed_out.get(entry.target, -math.inf)
        return since < config.interval + config.timeout

    def _skipped(self, entry: _Scheduled, cause: str, asked_at: float, waited: float, shed: bool = False) -> Result:
        # A tick that cannot run still says something: not "pending", not the last result.
        hanging = self._hanging(entry)
        if shed and not (cause == "target" and hanging):
            # one text for every shed tick: the redactor's cache answers it (a count in it would not)
            return not_run(
                entry.handle,
                Status.UNKNOWN,
                Reason.INTERNAL,
                SHED_TARGET if cause == "target" else SHED_POOL,
                asked_at,
                waited,
                skipped=True,
            )
        if cause == "target" and not hanging:
            return not_run(
                entry.handle,
                Status.UNKNOWN,
                Reason.INTERNAL,
                f"not run: this target's {self._per_target} slots (max_concurrency_per_target) were busy for"
                f" {waited:.1f}s with runs that did not time out: the agent is overloaded, not the target",
                asked_at,
                waited,
                skipped=True,
            )
        if cause == "target":
            return not_run(
                entry.handle,
                Status.CRITICAL,
                Reason.TIMEOUT,
                f"not run: the target's {self._per_target} slots (max_concurrency_per_target) stayed busy"
                f" with runs that did not finish for {waited:.1f}s",
                asked_at,
                waited,
            )
        return not_run(
            entry.handle,
            Status.UNKNOWN,
            Reason.INTERNAL,
            f"not run: the agent had all its slots (max_concurrency) busy for {waited:.1f}s",
            asked_at,
            waited,
            skipped=True,
        )

    async def _run_when_slots_free(self, entry: _Scheduled, planned: float, give_up_at: float) -> Result:
        """Take this target's slot, then a pool slot, waiting at most until the next tick."""
        target_slot = self._target_slots[entry.target]
        pool = self._suspect_slots if entry.suspect else self._slots
        asked = time.monotonic()
        target = entry.target
        self._target_waiting[target] = self._target_waiting.get(target, 0) + 1
        try:
            await _acquire(target_slot, give_up_at, "target")
        finally:
            if target in self._target_waiting:  # gone when the target's last probe was removed
                self._target_waiting[target] -= 1
        try:
            got_target = time.monotonic()
            self._waiting += 1  # the backlog _dispatch sheds ticks by
            try:
                await _acquire(pool, give_up_at, "concurrency")
            finally:
                self._waiting -= 1
            try:
                now = time.monotonic()
                if now - asked > DELAYED_SHARE * entry.handle.config.interval:
                    cause = "target" if got_target - asked >= now - got_target else "concurrency"
                    self._metrics.delayed_runs.labels(cause).inc()
                self._metrics.scheduler_lag.observe(max(now - planned, 0.0))
                self._metrics.in_flight.inc()
                try:
                    return await run_probe(entry.handle, self._monitor, self._lag_tolerance)
                finally:
                    self._metrics.in_flight.dec()
            finally:
                pool.release()
        finally:
            target_slot.release()


async def _acquire(semaphore: Slots, deadline: float, cause: str) -> None:
    """Take a slot, or raise _Skip(cause) if it is not free by the deadline (monotonic)."""
    try:  # a free slot is taken at once, with no timer (the common case)
        await semaphore.acquire(asyncio.get_running_loop().time() + deadline - time.monotonic())
    except TimeoutError:
        raise _Skip(cause) from None
