"""The daemon's lifecycle (`probe-agent run`, `probe-agent demo`): logging, the agent, its HTTP
server, signals (SIGHUP reloads, SIGTERM drains), the config watcher, and a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from probe_agent import LAUNCHED
from probe_agent.config.loader import AgentConfig
from probe_agent.config.shard import Shard
from probe_agent.core.defaults import MAX_CONFIG_BYTES
from probe_agent.core.errors import ConfigError
from probe_agent.core.logs import setup_logging
from probe_agent.core.redact import Redactor
from probe_agent.outputs.problems import print_problems
from probe_agent.runtime.agent import Agent
from probe_agent.runtime.watch import Snapshot, watching
from probe_agent.web.connlimits import raise_fd_limit
from probe_agent.web.server import WebOptions, start_server

log = logging.getLogger("probe_agent")

# The cyclic collector's thresholds for the daemon (Python's default: (700, 10, 10)). What a run
# makes (its task, timers, result) dies by reference counting; what the default reacts to is the
# runs alive at once, and a loaded agent keeps a thousand waiting for their slots: at 12,000 runs a
# second demanded it ran ~90 young and 0.7 full collections a second, 6.8% of its core, where this
# runs under one a second (bench/overload.py). Reference cycles (a failed run's exception chain)
# are still collected, a little later; a reload's parse turns collection off and freezes what
# it keeps (probe_agent.config.loader.no_cyclic_gc).
GC_THRESHOLDS = (10_000, 10, 10)


async def serve(
    config: AgentConfig,
    path: Path | None,
    host: str,
    port: int,
    log_format: str,
    log_level: str,
    grace: float,
    extra_cleanup: Callable[[], Awaitable[None]] | None = None,
    *,
    max_config_bytes: int = MAX_CONFIG_BYTES,
    allow_empty: bool = False,
    web_options: WebOptions | None = None,
    watch_interval: float = 0.0,
    watch_baseline: Snapshot | None = None,
    shard: Shard | None = None,
    history_file: Path | None = None,
    history_save_every: float = 60.0,
) -> int:
    options = web_options or WebOptions()
    gc.set_threshold(*GC_THRESHOLDS)

    log_filter = setup_logging(log_format, log_level, Redactor(config.secrets))
    soft_before, soft_now = raise_fd_limit()
    log.info("open files limit", extra={"was": soft_before, "now": soft_now})
    agent = Agent(
        config,
        path,
        grace=grace,
        log_filter=log_filter,
        max_config_bytes=max_config_bytes,
        allow_empty=allow_empty,
        shard=shard,
        history_file=history_file,
        history_save_every=history_save_every,
        launched=LAUNCHED,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_hup() -> None:
        try:
            options.reload_web_config()  # renewed certificates, changed users
        except ConfigError as exc:
            log.error("web config reload rejected; keeping the running one", extra={"problems": exc.problems})
        task = asyncio.create_task(agent.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        runner = await start_server(agent, host, port, options)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await agent.start()
    except ConfigError as exc:
        print_problems(exc.problems, path or "config", exc.locations)
        await agent.stop()
        await runner.cleanup()
        return 1
    log.info(
        "listening",
        extra={
            "address": f"{host}:{port}",
            "config": str(path) if path else "(embedded)",
            "history_file": str(history_file) if history_file else None,
        },
    )
    async with watching(path, agent.reload, watch_interval, agent.discovery_files, watch_baseline):
        await stop.wait()
    log.info("stopping: draining probe runs in flight", extra={"grace_seconds": grace})
    await agent.stop()
    await runner.cleanup()
    if extra_cleanup is not None:
        await extra_cleanup()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    return 0
