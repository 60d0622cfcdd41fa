"""The daemon: config -> probe handles -> scheduler -> state, with reload and graceful stop."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from probe_agent.config import AgentConfig, load_config
from probe_agent.errors import ConfigError
from probe_agent.logs import RedactingFilter
from probe_agent.metrics import AgentMetrics
from probe_agent.model import Result, Status
from probe_agent.redact import Redactor
from probe_agent.runner import ProbeHandle
from probe_agent.scheduler import Scheduler
from probe_agent.state import StateStore

log = logging.getLogger("probe_agent")

LOOP_TICK = 0.5
LIVENESS_STALL = 10.0  # /health/live fails when the loop has not ticked for this long


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        config_path: Path | None = None,
        *,
        grace: float = 10.0,
        log_filter: RedactingFilter | None = None,
    ):
        self.config = config
        self.config_path = config_path
        self.grace = grace
        self.store = StateStore()
        self.metrics = AgentMetrics(self.store)
        self.redactor = Redactor(config.secrets)
        self._log_filter = log_filter
        self._handles: list[ProbeHandle] = []
        self._scheduler: Scheduler | None = None
        self._heartbeat = time.monotonic()
        self._ticker: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick(), name="loop-lag")
        self._apply(self.config)
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set(time.time())
        log.info("agent started", extra={"probes": len(self._handles)})

    def _apply(self, config: AgentConfig) -> None:
        self.config = config
        self.redactor = Redactor(config.secrets)
        if self._log_filter is not None:
            self._log_filter.redactor = self.redactor
        self._handles = [ProbeHandle.build(c, self.redactor) for c in config.probes]
        self.store.sync(config.probes, {c.name: self.redactor.redact(c.target()) for c in config.probes})
        self.metrics.probes.set(len(self._handles))
        self._scheduler = Scheduler(self.metrics, self._record, config.max_concurrency)
        self._scheduler.start(self._handles)

    def _record(self, result: Result) -> None:
        transition = self.store.record(result)
        if transition is None:
            return
        level = logging.INFO if result.status is Status.OK else logging.WARNING
        log.log(
            level,
            "probe status changed",
            extra={
                "probe": result.probe,
                "type": result.type,
                "from": transition.old.label if transition.old is not None else None,
                "to": result.status.label,
                "reason": result.reason.value if result.reason else None,
                "detail": result.message,
                "duration_seconds": round(result.duration, 4),
            },
        )

    async def reload(self) -> list[str]:
        """Load the config file again. On errors keep running the old config and return the problems."""
        async with self._reload_lock:
            if self.config_path is None:
                return ["the agent was started without a config file; nothing to reload"]
            try:
                config = load_config(self.config_path)
            except ConfigError as exc:
                self.metrics.reload_success.set(0)
                log.error("config reload rejected; keeping the running config", extra={"problems": exc.problems})
                return exc.problems
            await self._stop_probes()
            self._apply(config)
            self.metrics.reload_success.set(1)
            self.metrics.reload_timestamp.set(time.time())
            log.info("config reloaded", extra={"probes": len(self._handles)})
            return []

    async def _stop_probes(self) -> None:
        if self._scheduler is not None:
            await self._scheduler.stop(self.grace)
        await asyncio.gather(*(h.aclose() for h in self._handles))

    async def stop(self) -> None:
        await self._stop_probes()
        if self._ticker is not None:
            self._ticker.cancel()
        log.info("agent stopped")

    def alive(self) -> bool:
        fresh = time.monotonic() - self._heartbeat < LIVENESS_STALL
        return fresh and self._scheduler is not None and self._scheduler.alive()

    async def _tick(self) -> None:
        # A prober whose event loop is late reports false latency: measure how late.
        while True:
            before = time.monotonic()
            await asyncio.sleep(LOOP_TICK)
            self._heartbeat = time.monotonic()
            self.metrics.observe_loop_lag(max(self._heartbeat - before - LOOP_TICK, 0.0))
