"""The daemon: config -> probe handles -> scheduler -> state, with reload and graceful stop.

Two rules shape it:
- The event loop is the agent's clock, so nothing slow runs on it: reading,
  parsing and validating the probes file and building probe handles (TLS
  contexts, files) happen in a worker thread; what must touch the loop is done
  in batches.
- The agent cannot be silenced. A reload is built completely before it
  replaces anything; any failure, expected or not, leaves the running probes
  untouched and says so (400, a log line, reload_successful 0). A reload
  touches only the probes that changed: the others keep their schedule,
  state and runs in flight. A watchdog marks results that stopped coming as
  stale and turns /health/live 503 when the scheduler stops making progress.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from probe_agent.config.discovery import digest, discovery_base, sd_files, sources_of
from probe_agent.config.kubernetes import source_names
from probe_agent.config.loader import AgentConfig, load_config, no_cyclic_gc
from probe_agent.config.shard import Shard
from probe_agent.config.sources import SourceKey, SourceState
from probe_agent.core.defaults import MAX_CONFIG_BYTES
from probe_agent.core.errors import AGENT_STARVED, ConfigError, Reason, first_names
from probe_agent.core.logs import RedactingFilter
from probe_agent.core.loopmonitor import LoopMonitor
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Result, Status
from probe_agent.probes import close_shared
from probe_agent.runtime import historyfile
from probe_agent.runtime.history import ProbeHistory
from probe_agent.runtime.kubernetes import ServiceWatch
from probe_agent.runtime.maintenance import MaintenanceBook
from probe_agent.runtime.metrics import AgentMetrics
from probe_agent.runtime.remediation import Remediator
from probe_agent.runtime.runner import ProbeHandle, build_handles
from probe_agent.runtime.scheduler import Scheduler
from probe_agent.runtime.state import ProbeState, StalenessClock, StateStore
from probe_agent.runtime.watch import SHRINK_SHARE, ReloadHeld
from probe_agent.schema.discovery import KubernetesSdConfig
from probe_agent.schema.maintenance import MaintenanceWindow

T = TypeVar("T")

log = logging.getLogger("probe_agent")

LIVENESS_STALL = 10.0  # /health/live fails when the loop monitor or watchdog has not run for this long
WATCH_EVERY = 1.0  # the watchdog's period: staleness and scheduler progress
# A reload (reading the file and every file it names, building every probe) that takes longer is
# a failed reload: a file on a hung mount must not wedge reloads, nor SIGTERM, for good.
RELOAD_DEADLINE = 60.0
OVERLOAD_HOLD = 5.0  # the agent reads overloaded for this long after it last shed a run
STARVATION_WINDOW = 10  # watchdog periods over which runs the agent itself could not make are counted
STARVED_RUNS = 10  # at least this many, and half the runs, and /health/live fails
WATCH_SETTLE = 0.2  # s: watch events this close together make one reload
MAX_TROUBLE_SHOWN = 50  # failing discovery sources /health lists
BATCH = 100  # loop-side work (scheduling probes, scanning states) yields to the loop after this many


@contextlib.asynccontextmanager
async def _building() -> AsyncIterator[None]:
    # Building and swapping in 10,000 probes allocates millions of objects; a full garbage
    # collection meanwhile walks them all while holding the loop. Collect nothing until the
    # new config is in place, then freeze it (it lives until the next reload) out of them.
    with no_cyclic_gc():
        yield


async def _in_thread(work: Callable[[], T], deadline: float) -> tuple[T, None] | tuple[None, threading.Thread]:
    """`work()` in a thread of its own, waited for up to `deadline` seconds: its result, or the
    thread still running it. A daemon thread, not the loop's executor, whose threads are joined
    at exit: one blocked in a read that never ends would keep SIGTERM from ending the agent."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if not future.done():
            future.set_exception(exc) if exc is not None else future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, exc = work(), None
        except BaseException as error:  # noqa: BLE001 - handed to the waiting coroutine
            result, exc = None, error
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, exc)

    thread = threading.Thread(target=run, name="config-build", daemon=True)
    thread.start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), deadline), None
    except TimeoutError:
        return None, thread


@dataclass(slots=True)
class _Plan:
    """A config built and ready to swap in."""

    config: AgentConfig
    redactor: Redactor
    start: list[ProbeHandle]  # new and changed probes
    stop: list[str]  # removed and changed probes
    states: dict[str, ProbeState]


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        config_path: Path | None = None,
        *,
        grace: float = 10.0,
        log_filter: RedactingFilter | None = None,
        max_config_bytes: int = MAX_CONFIG_BYTES,
        allow_empty: bool = False,
        shard: Shard | None = None,
        history_file: Path | None = None,
        history_save_every: float = 60.0,
        launched: float = -math.inf,
    ):
        """`launched`: when the process started (monotonic; the daemon's), for its first runs."""
        self.launched = launched
        self.shard = shard
        self.history_file = history_file  # the status page's history over restarts (probe_agent.runtime.historyfile)
        self.history_save_every = history_save_every
        self._history_saver: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        # kubernetes_sd_configs: a list-then-watch per source, and the lists they hold now
        self._watches: dict[SourceKey, tuple[KubernetesSdConfig, asyncio.Task[None]]] = {}
        self._watched: dict[SourceKey, SourceState] = {}
        self._watched_changed = asyncio.Event()
        self._watched_reloader: asyncio.Task[None] | None = None
        config = shard.select(config) if shard is not None else config
        self.config = config
        self.config_path = config_path
        self.grace = grace
        self.max_config_bytes = max_config_bytes
        self.allow_empty = allow_empty
        self.store = StateStore()
        self.metrics = AgentMetrics()
        if shard is not None:
            self.metrics.shard_info.labels(str(shard.index), str(shard.count)).set(1)
            self.metrics.shards.set(shard.count)
        self.redactor = Redactor(config.secrets)
        self.monitor = LoopMonitor(on_sample=self.metrics.observe_loop_lag)
        self.remediator = Remediator(self.metrics)
        self._log_filter = log_filter
        self._scheduler: Scheduler | None = None
        self._reload_lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None
        self._watch_beat = time.monotonic()
        self._stuck: list[str] = []
        self._staleness = StalenessClock()
        self._pending = 0  # probes with no result yet, kept as results arrive
        self.overloaded = False  # shedding runs it cannot start (the scheduler's last_shed)
        self._runs = self._starved_runs = 0  # since the watchdog last looked
        self._starvation: collections.deque[tuple[int, int]] = collections.deque(maxlen=STARVATION_WINDOW)
        self._overrun_build: threading.Thread | None = None  # a reload's thread, past its deadline and still blocked
        self._closing: set[asyncio.Task[None]] = set()
        self.started = False  # the store holds the config's probes (until then /health says starting)
        self.maintenance = MaintenanceBook(config.maintenance)

    async def start(self) -> None:
        self.monitor.start()
        self._scheduler = Scheduler(
            self.metrics,
            self._record,
            self.config.max_concurrency,
            per_target=self.config.max_concurrency_per_target,
            monitor=self.monitor,
            lag_tolerance=self.config.loop_lag_tolerance,
            launched=self.launched,
        )
        async with self._reload_lock, _building():  # a reload asked for while starting waits for the start
            # Every probe shows as pending at once, with the history of the last process (read first:
            # the page must never list a probe without it); building its handle (TLS, files) comes next.
            kept = {} if self.history_file is None else await asyncio.to_thread(historyfile.read, self.history_file)
            states = self.store.probes = await asyncio.to_thread(self.store.plan_config, self.config)
            self._restore_history(kept)
            # pending from the first moment the probes exist: a gate on "pending == 0" must not pass early
            self.metrics.pending_probes.set(len(states))
            self.metrics.probes.set(len(states))
            self._count_discovered(self.config)
            self.started = True
            plan = await asyncio.to_thread(self._build, self.config, {}, states)
            await self._apply(plan)
        self._watchdog = asyncio.create_task(self._watch(), name="watchdog")
        self._refresher = asyncio.create_task(self._refresh_sources(), name="discovery-refresh")
        self._watched_reloader = asyncio.create_task(self._reload_on_watch(), name="kubernetes-reload")
        self._sync_watches()
        if self.history_file is not None:
            self._history_saver = asyncio.create_task(self._save_history_every(), name="history-saver")
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set(time.time())
        log.info("agent started", extra={"probes": len(self.store.probes)})

    # --- building and swapping in a config ---------------------------------

    def _build(
        self, config: AgentConfig, running: dict[str, ProbeHandle], states: dict[str, ProbeState] | None = None
    ) -> _Plan:
        """Everything the new config needs, built off the loop (`states`: already planned). Raises ConfigError."""
        redactor = Redactor(config.secrets)
        unchanged = {c.name for c in config.probes if c.name in running and running[c.name].config == c}
        handles = build_handles(config, [c for c in config.probes if c.name not in unchanged])
        if states is None:
            states = self.store.plan_config(config)
        return _Plan(config, redactor, handles, [n for n in running if n not in unchanged], states)

    async def _apply(self, plan: _Plan) -> None:
        scheduler = self._scheduler
        assert scheduler is not None
        # In batches: each removal cancels the probe's run and starts its closing, and the loop
        # runs what they set going on its next turn. 10,000 at once held it 1.3 s.
        for i, name in enumerate(plan.stop, 1):
            old = scheduler.remove(name)
            if old is not None:
                task = asyncio.create_task(old.aclose(), name=f"close:{name}")
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            if i % BATCH == 0:
                await asyncio.sleep(0)
        scheduler.compact()
        self.config = plan.config
        self.maintenance.replace_scheduled(plan.config.maintenance)
        self.redactor = plan.redactor
        if self._log_filter is not None:
            self._log_filter.redactor = plan.redactor
        self.store.probes = plan.states
        self.remediator.forget(set(plan.states))
        await self._mark_maintenance(all_probes=True)  # before the new probes' first runs
        for i, handle in enumerate(plan.start, 1):
            scheduler.add(handle, resume=plan.states[handle.name].last is not None)
            if i % BATCH == 0:
                await asyncio.sleep(0)
        self.metrics.probes.set(len(plan.states))
        self._count_discovered(plan.config)
        self._pending = sum(1 for state in plan.states.values() if state.last is None)
        self._staleness.reset(plan.states.values())
        self.metrics.pending_probes.set(self._pending)
        if self._watched_reloader is not None:  # started: a reload may add or drop watched sources
            self._sync_watches()

    async def reload(self, cautious: bool = False, answers: dict[SourceKey, SourceState] | None = None) -> list[str]:
        """Load the config file again. On any problem keep the running probes untouched and return the
        problems. `cautious` (the file watcher): raise ReloadHeld instead of applying a config that
        would remove a large share of the running probes (a file still being written, perhaps)."""
        async with self._reload_lock, _building():
            if self.config_path is None:
                return ["the agent was started without a config file; nothing to reload"]
            if self._overrun_build is not None and self._overrun_build.is_alive():
                return self._rejected(
                    [
                        f"an earlier reload is still blocked reading the config or a file it names "
                        f"(over {RELOAD_DEADLINE:g}s); the agent must be restarted to read it again"
                    ]
                )
            path = self.config_path
            assert self._scheduler is not None
            running = self._scheduler.handles()

            def build() -> _Plan:
                config = load_config(
                    path,
                    max_bytes=self.max_config_bytes,
                    allow_empty=self.allow_empty,
                    discovery={**self.config.discovery_sources, **self._watched},
                    answers=answers,
                )
                if self.shard is not None:
                    config = self.shard.select(config)
                return self._build(config, running)

            try:
                plan, blocked = await _in_thread(build, RELOAD_DEADLINE)
                if plan is None:
                    self._overrun_build = blocked
                    return self._rejected(
                        [
                            f"reading and building the config did not finish within {RELOAD_DEADLINE:g}s "
                            "(is a file it names on a hung mount?); the running probes stay"
                        ]
                    )
                dropped = sum(1 for name in running if name not in plan.states)
                if cautious and dropped >= 2 and dropped >= SHRINK_SHARE * len(running):
                    for handle in plan.start:  # built for nothing, for now
                        await handle.aclose()
                    raise ReloadHeld(dropped, len(running))
            except ReloadHeld:
                raise
            except ConfigError as exc:
                return self._rejected([self.redactor.redact(p) for p in exc.problems])
            except Exception as exc:
                log.exception("config reload failed unexpectedly; keeping the running config")
                return self._rejected(
                    [self.redactor.redact(f"internal error while building the config: {type(exc).__name__}: {exc}")]
                )
            await self._apply(plan)
            self.metrics.reload_success.set(1)
            self.metrics.reload_timestamp.set(time.time())
            added = [name for name in plan.states if name not in running]
            removed = [name for name in running if name not in plan.states]
            changed = [name for name in plan.stop if name in plan.states]
            # one line per reload, whatever its size: counts, and the first names of each kind
            log.info(
                "config reloaded",
                extra={
                    "probes": len(plan.states),
                    "added": len(added),
                    "changed": len(changed),
                    "removed": len(removed),
                    "added_probes": first_names(added),
                    "changed_probes": first_names(changed),
                    "removed_probes": first_names(removed),
                },
            )
            return []

    def _count_discovered(self, config: AgentConfig) -> None:
        by_group: dict[str, int] = {}
        for probe in config.probes:
            if (group := config.discovered_group.get(probe.name)) is not None:
                by_group[group] = by_group.get(group, 0) + 1
        self.metrics.count_discovered([g.name for g in config.target_groups], by_group)
        self.metrics.count_sources(
            {
                (group, self.redactor.redact(source)): (st.answered_at, len(st.targets))
                for (group, source), st in config.discovery_sources.items()
            }
        )
        for (group, source), state in config.discovery_sources.items():
            if state.error is None:
                continue
            self.metrics.discovery_refresh_failures.labels(group, self.redactor.redact(source)).inc()
            kept = "keeping its last targets" if state.answered_at is not None else "its targets are pending"
            log.warning(
                f"discovery source failed; {kept}",
                extra={"group": group, "targets": len(state.targets), "detail": self.redactor.redact(state.error)},
            )

    def discovery_trouble(self) -> list[dict[str, str | float | None]]:
        """For /health: the sources whose last read failed, and whether their group still waits
        for a first answer (pending) or runs its last good targets (stale)."""
        return [
            {
                "group": group,
                "source": self.redactor.redact(source),
                "state": "pending" if state.answered_at is None else "stale",
                "last_success": state.answered_at,
                "error": self.redactor.redact(state.error),
            }
            for (group, source), state in self.config.discovery_sources.items()
            if state.error is not None
        ][:MAX_TROUBLE_SHOWN]

    def discovery_pending_groups(self) -> list[str]:
        """Groups with a source that has never answered: some of their probes do not exist yet."""
        pending = {group for (group, _), state in self.config.discovery_sources.items() if state.answered_at is None}
        return sorted(pending)

    def group_is_critical(self, name: str) -> bool:
        group = next((g for g in self.config.target_groups if g.name == name), None)
        return group is not None and group.probe.get("critical") is True

    def _rejected(self, problems: list[str]) -> list[str]:
        self.metrics.reload_success.set(0)
        log.error("config reload rejected; keeping the running config", extra={"problems": problems})
        return problems

    # --- results ------------------------------------------------------------

    def _record(self, result: Result) -> None:
        if result.distorted:
            self.metrics.distorted_runs.inc()
        self._runs += 1
        if result.reason is Reason.INTERNAL and result.message.startswith(AGENT_STARVED):
            self._starved_runs += 1
        state = self.store.probes.get(result.probe)
        first = was_stale = False
        if state is not None and not result.skipped:
            first, was_stale = state.last is None, state.stale
        transition = self.store.record(result)
        if first and state is not None:
            self._pending -= 1
            self._staleness.first_result(state)
        if was_stale:
            self._staleness.recovered()
        if state is not None and state.config.remediation is not None:
            self.remediator.on_result(state, result, self.redactor)  # starts a task at most; never waits
        if transition is None:
            return
        level = logging.INFO if result.status is Status.OK else logging.WARNING
        extra: dict[str, object] = {
            "probe": result.probe,
            "type": result.type,
            "from": transition.old.label if transition.old is not None else None,
            "to": result.status.label,
            "reason": result.reason.value if result.reason else None,
            "detail": result.message,
            "duration_seconds": round(result.duration, 4),
        }
        if result.distorted:
            extra["distorted"] = result.details["distorted"]
        if state is not None and state.maintenance is not None:
            extra["maintenance"] = state.maintenance
            level = logging.INFO  # expected during planned work: nothing to warn about
        log.log(level, "probe status changed", extra=extra)

    async def _refresh_sources(self) -> None:
        """Ask each http_sd endpoint and DNS name again every its refresh_interval; reload when one
        answers something else than at the last load. A failing source changes nothing (its last
        good targets keep running; counted and logged). An answer that would remove many probes
        is loaded only if the next refresh answers the same (as the watcher holds a shrunk file)."""
        asked: dict[SourceKey, float] = {}
        held: dict[SourceKey, str] = {}  # an answer a cautious reload held back
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            due = [
                ((group.name, source.name), source)
                for group in self.config.target_groups
                for source in sources_of(group, [])
                if not source.watched  # Kubernetes: its watch says when it changed
                and now - asked.setdefault((group.name, source.name), now) >= source.refresh_interval
            ]
            changed: dict[SourceKey, SourceState] = {}  # its new answer
            for key, source in due:
                asked[key] = now
                try:
                    targets, data = await asyncio.to_thread(source.read)
                    seen = digest(data)
                except ValueError as exc:
                    self.metrics.discovery_refresh_failures.labels(key[0], self.redactor.redact(key[1])).inc()
                    log.warning(
                        "discovery refresh failed; keeping the last targets",
                        extra={"group": key[0], "detail": self.redactor.redact(str(exc))},
                    )
                    continue
                last = self.config.discovery_sources.get(key)
                if last is None or seen != last.digest:
                    changed[key] = SourceState(tuple(targets), seen, time.time(), None)
            if not changed:
                continue
            confirmed = all(held.get(key) == state.digest for key, state in changed.items())
            try:
                # the answers just read go into the reload: asking again would double the load
                # on the endpoint, and might load something other than what was compared
                await self.reload(cautious=not confirmed, answers=changed)
                held.clear()
            except ReloadHeld as exc:
                held = {key: state.digest or "" for key, state in changed.items()}
                log.warning(
                    "a discovery source answered a list that would remove many probes:"
                    " loading it if the next refresh agrees",
                    extra={"removed": exc.removed, "running": exc.running},
                )
            except Exception:  # a bug in a reload must not end the refreshing
                log.exception("discovery refresh: the reload failed")

    def _sync_watches(self) -> None:
        """A list-then-watch for each kubernetes source of the config, none for one it dropped."""
        wanted = {
            (group.name, name): (sd, namespace)
            for group in self.config.target_groups
            for sd in group.kubernetes_sd_configs
            for name, namespace in source_names(sd)
        }
        for key, (sd, task) in list(self._watches.items()):
            if key not in wanted or wanted[key][0] != sd:
                task.cancel()
                del self._watches[key]
                self._watched.pop(key, None)
        for key, (sd, namespace) in wanted.items():
            if key not in self._watches:
                follower = ServiceWatch(key, sd, namespace, self._on_watched)
                self._watches[key] = (sd, asyncio.create_task(follower.run(), name=f"kubernetes:{key[1]}"))

    def _on_watched(self, key: SourceKey, state: SourceState) -> None:
        if key not in self._watches:
            return  # a watch being cancelled
        self._watched[key] = state
        self._watched_changed.set()

    async def _reload_on_watch(self) -> None:
        """Reload when a watched list changed; changes within WATCH_SETTLE seconds are one reload."""
        while True:
            await self._watched_changed.wait()
            await asyncio.sleep(WATCH_SETTLE)
            self._watched_changed.clear()
            try:
                problems = await self.reload()
                if problems:
                    log.error("kubernetes discovery: the reload failed", extra={"problems": problems})
            except Exception:  # a bug in a reload must not end the watching
                log.exception("kubernetes discovery: the reload failed")

    def discovery_files(self) -> list[str]:
        """The file_sd files the config's target groups match now (globbed afresh: a new file
        that matches is a change to watch). Blocking: the watcher calls it in a thread."""
        base = discovery_base(self.config_path)
        return [name for group in self.config.target_groups for name in sd_files(group, base)]

    # --- maintenance ----------------------------------------------------------

    async def _mark_maintenance(self, *, all_probes: bool = False) -> None:
        """Set each probe's window (or None) from the windows in effect now; log windows that
        begin or end (one line per window, not per probe). The probes are gone through only
        when the set of windows in effect changed, or for a new config (`all_probes`): the
        watchdog calls this every second."""
        change = self.maintenance.refresh(dt.datetime.now(dt.UTC))
        for window, until in change.started:
            log.info(
                "maintenance window started",
                extra={"window": window.name, "reason": window.reason, "until": until.isoformat()},
            )
        for name in change.ended:
            log.info("maintenance window ended", extra={"window": name})
        if not all_probes and not change:
            return
        for i, state in enumerate(list(self.store.probes.values()), 1):
            covering = self.maintenance.covering(state.config.name, state.config.tags)
            if state.maintenance != covering:
                health_before, old_window = state.reported_health(), state.maintenance
                state.maintenance = covering
                state.version += 1
                state.note_health(
                    health_before,
                    f"maintenance window {covering} began" if covering else f"maintenance window {old_window} ended",
                )
            if i % BATCH == 0:
                await asyncio.sleep(0)

    async def start_maintenance(self, request: dict[str, object]) -> MaintenanceWindow:
        """An ad hoc window from now on. Raises ValueError with what is wrong with the request."""
        probes = [(s.config.name, s.config.tags) for s in self.store.probes.values()]
        window = self.maintenance.start(request, dt.datetime.now(dt.UTC), probes)
        await self._mark_maintenance(all_probes=True)  # a window of the same name may cover others now
        return window

    async def end_maintenance(self, name: str) -> bool:
        """End an ad hoc window now; False when there is none of that name."""
        if not self.maintenance.end(name):
            return False
        await self._mark_maintenance()
        return True

    # --- liveness -------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            await self._watch_once(time.monotonic())

    async def _watch_once(self, now: float) -> None:
        """One look of the watchdog. Its cost follows what changed, not the number of probes:
        staleness comes from a heap of deadlines (StalenessClock), the pending count is kept as
        results arrive, and the scheduler finds stuck probes among the runs in flight."""
        for i, state in enumerate(self._staleness.due(now, self.store.probes), 1):
            before = state.reported_health()
            state.stale = True
            state.version += 1
            state.note_health(before, f"no run has finished for {now - state.finished:.0f}s")
            log.warning(
                "probe result is stale: no run has finished for %.0fs",
                now - state.finished,
                extra={"probe": state.config.name, "type": state.config.type},
            )
            if i % BATCH == 0:
                await asyncio.sleep(0)
        self.metrics.pending_probes.set(self._pending)
        self.metrics.stale_probes.set(self._staleness.stale)
        if self.maintenance.active or self.maintenance.windows():
            await self._mark_maintenance()
        self._stuck = self._scheduler.stuck() if self._scheduler is not None else []
        self._note_starvation()
        self._note_overload(now)
        self._watch_beat = time.monotonic()

    def _note_overload(self, now: float) -> None:
        was = self.overloaded
        self.overloaded = self._scheduler is not None and now - self._scheduler.last_shed < OVERLOAD_HOLD
        if self.overloaded != was:
            self.metrics.overloaded.set(1 if self.overloaded else 0)
            if self.overloaded:
                log.warning(
                    "the agent is overloaded: runs it cannot start are shed and reported UNKNOWN"
                    ' (probe_agent_skipped_runs_total{cause="overload"}); fewer probes or a longer'
                    " interval per replica, or more replicas (run --shard)"
                )
            else:
                log.info("the agent is no longer overloaded")

    def _note_starvation(self) -> None:
        """Runs, and runs the agent could not make for want of fds or memory, in the last
        STARVATION_WINDOW watchdog periods: an agent whose own resources fail most of its runs
        cannot work, and /health/live says so (a restart is the cure a kubelet can give)."""
        was = self.starved()
        self._starvation.append((self._runs, self._starved_runs))
        self._runs = self._starved_runs = 0
        if self.starved() != was:
            level = logging.ERROR if not was else logging.INFO
            log.log(
                level,
                "the agent is out of file descriptors or memory for most runs"
                if not was
                else "the agent has the resources for its runs again",
            )

    def starved(self) -> bool:
        runs = sum(r for r, _ in self._starvation)
        starved = sum(s for _, s in self._starvation)
        return starved >= STARVED_RUNS and 2 * starved >= runs

    def alive(self) -> bool:
        now = time.monotonic()
        return (
            now - self.monitor.heartbeat < LIVENESS_STALL
            and now - self._watch_beat < LIVENESS_STALL
            and not self._stuck
            and (self._overrun_build is None or not self._overrun_build.is_alive())
            and not self.starved()
            and self._scheduler is not None
            and self._scheduler.alive()
        )

    # --- the status page's history over restarts --------------------------------

    def _restore_history(self, found: dict[str, ProbeHistory]) -> None:
        restored = 0
        for name, history in found.items():
            state = self.store.probes.get(name)
            if state is not None:
                state.history = history
                restored += 1
        if found:
            log.info("history restored", extra={"file": str(self.history_file), "probes": restored})

    async def save_history(self) -> None:
        """Write the history file (a snapshot taken on the loop, written in a thread)."""
        if self.history_file is None:
            return
        records = {}
        for i, (name, state) in enumerate(list(self.store.probes.items()), 1):
            records[name] = state.history.to_record()  # the snapshot, on the loop, in batches
            if i % (BATCH * 5) == 0:
                await asyncio.sleep(0)
        path = self.history_file

        def write() -> None:
            historyfile.write(path, historyfile.encode(records))

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.warning(
                "cannot write the history file", extra={"file": str(self.history_file), "problem": exc.strerror}
            )

    async def _save_history_every(self) -> None:
        while True:
            await asyncio.sleep(self.history_save_every)
            await self.save_history()

    async def stop(self) -> None:
        if self._history_saver is not None:
            self._history_saver.cancel()
        if self._scheduler is not None:
            await self._scheduler.stop(self.grace)
            await asyncio.gather(*(h.aclose() for h in self._scheduler.handles().values()))
        await self.save_history()
        if self._closing:
            await asyncio.wait(self._closing, timeout=5)
        await self.remediator.close()
        await close_shared()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
        if self._watched_reloader is not None:
            self._watched_reloader.cancel()
        for _, task in self._watches.values():
            task.cancel()
        if self._watches:
            await asyncio.wait([task for _, task in self._watches.values()], timeout=5)
        self._watches.clear()
        self.monitor.stop()
        log.info("agent stopped")
