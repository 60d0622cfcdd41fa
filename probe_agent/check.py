"""`probe-agent check`: run selected probes once, concurrently, through the same runner as the daemon."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from probe_agent.config import AgentConfig, did_you_mean
from probe_agent.errors import ConfigError
from probe_agent.loopmonitor import LoopMonitor
from probe_agent.model import Result, Status
from probe_agent.probe import ProbeConfig
from probe_agent.probes import REGISTRY, close_shared
from probe_agent.reports import worst
from probe_agent.runner import ProbeHandle, run_probe

STATUS_STYLE = {Status.OK: "green", Status.WARNING: "yellow", Status.CRITICAL: "bold red", Status.UNKNOWN: "magenta"}


def select(config: AgentConfig, names: Sequence[str], tags: Sequence[str]) -> list[ProbeConfig]:
    known = config.all_probe_names or tuple(p.name for p in config.probes)
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError([f"--probe {n}: no probe with that name{did_you_mean(n, known)}" for n in missing])
    chosen = [
        p for p in config.probes if (not names or p.name in names) and (not tags or set(tags) & set(p.tags))
    ]
    if not chosen:
        raise ConfigError(["no probe matches the selection"])
    return chosen


async def run_once(config: AgentConfig, handles: list[ProbeHandle]) -> list[Result]:
    limit = asyncio.Semaphore(config.max_concurrency)
    monitor = LoopMonitor()  # `check` marks runs measured on a late loop too
    monitor.start()

    async def one(handle: ProbeHandle) -> Result:
        async with limit:
            return await run_probe(handle, monitor, config.loop_lag_tolerance)

    try:
        return list(await asyncio.gather(*(one(h) for h in handles)))
    finally:
        monitor.stop()
        await asyncio.gather(*(h.aclose() for h in handles))
        await close_shared()


def _latency(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def render_table(results: Sequence[Result], targets: dict[str, str], out: TextIO | None = None) -> None:
    console = Console(file=out or sys.stdout, highlight=False, soft_wrap=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    # On a narrow terminal the target gives way: the detail is what on-call reads.
    show_target = console.width >= 120
    columns = ("PROBE", "TYPE", "STATUS", "LATENCY", "TARGET") if show_target else ("PROBE", "TYPE", "STATUS", "LATENCY")
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    for r in sorted(results, key=lambda r: (-r.status, r.probe)):
        detail = f"{r.reason.value}: {r.message}" if r.reason else r.message
        info = [r.details[key] for key in REGISTRY[r.type].info_details if key in r.details]
        if info:  # what answered: a server version, beside what it said
            detail = f"{detail} [{', '.join(info)}]".lstrip()
        if r.distorted:
            detail = f"{detail} [DISTORTED: agent loop late {r.loop_lag * 1000:.0f} ms]".lstrip()
        cells: list[str | Text] = [r.probe, r.type, Text(r.status.name, style=STATUS_STYLE[r.status]), _latency(r.duration)]
        table.add_row(*cells, *([targets.get(r.probe, "")] if show_target else []), detail)
    console.print(table)
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    summary = ", ".join(f"{n} {s.name}" for s, n in counts.items() if n)
    overall = worst(results)
    console.print(Text(f"\n{overall.name}: {summary}", style=STATUS_STYLE[overall]))


def render_json(results: Sequence[Result], targets: dict[str, str], out: TextIO | None = None) -> None:
    document = {
        "status": worst(results).label,
        "exit_code": int(worst(results)),
        "probes": [{**r.to_dict(), "target": targets.get(r.probe, "")} for r in results],
    }
    (out or sys.stdout).write(json.dumps(document, indent=2) + "\n")
