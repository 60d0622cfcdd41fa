"""`probe-agent check`: run selected probes once, concurrently, through the same runner as the daemon."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TextIO

from probe_agent.config import AgentConfig, did_you_mean
from probe_agent.errors import ConfigError, Reason
from probe_agent.loopmonitor import LoopMonitor
from probe_agent.model import Result, Status
from probe_agent.probe import ProbeConfig
from probe_agent.probes import REGISTRY, close_shared
from probe_agent.reports import worst
from probe_agent.runner import ProbeHandle, run_probe
from probe_agent.units import value_text


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


async def run_once(config: AgentConfig, handles: list[ProbeHandle], trace: bool = False) -> list[Result]:
    limit = asyncio.Semaphore(config.max_concurrency)
    monitor = LoopMonitor()  # `check` marks runs measured on a late loop too
    monitor.start()

    async def one(handle: ProbeHandle) -> Result:
        async with limit:
            return await run_probe(handle, monitor, config.loop_lag_tolerance, trace=trace)

    try:
        return list(await asyncio.gather(*(one(h) for h in handles)))
    finally:
        monitor.stop()
        await asyncio.gather(*(h.aclose() for h in handles))
        await close_shared()


def mark_maintenance(config: AgentConfig, results: Sequence[Result]) -> None:
    """Name the scheduled window a probe is in. The status stays what the run found: `check`
    tells the truth at 3 a.m.; not paging for planned work is the alerting's job."""
    if not config.maintenance:
        return
    import datetime as dt

    from probe_agent.maintenance import active_windows, window_of

    active = active_windows(config.maintenance, dt.datetime.now(dt.UTC))
    tags = {p.name: p.tags for p in config.probes}
    for result in results:
        window = window_of(result.probe, tags.get(result.probe, []), active) if active else None
        if window is not None:
            result.details["maintenance"] = window


def _latency(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


ANSI = {Status.OK: "\x1b[32m", Status.WARNING: "\x1b[33m", Status.CRITICAL: "\x1b[1;31m", Status.UNKNOWN: "\x1b[35m"}
RESET = "\x1b[0m"


def _detail(r: Result) -> str:
    detail = f"{r.reason.value}: {r.message}" if r.reason else r.message
    probe_cls = REGISTRY[r.type]
    info = [r.details[key] for key in probe_cls.info_details if key in r.details]
    if info:  # what answered: a server version, beside what it said
        detail = f"{detail} [{', '.join(info)}]".lstrip()
    shown = [f"{name} {value_text(name, r.values[name])}" for name in probe_cls.shown_values if name in r.values]
    if shown and not detail:
        detail = ", ".join(shown)
    elif shown and r.reason in (None, Reason.ASSERTION):  # it answered: what it measured helps
        detail = f"{detail} ({', '.join(shown)})"
    if "maintenance" in r.details:
        detail = f"{detail} [in maintenance window {r.details['maintenance']}]".lstrip()
    if r.distorted:
        detail = f"{detail} [DISTORTED: agent loop late {r.loop_lag * 1000:.0f} ms]".lstrip()
    return detail


def render_table(results: Sequence[Result], targets: dict[str, str], out: TextIO | None = None) -> None:
    """A row per probe, the worst first. DETAIL gets the rest of the terminal and wraps at
    words; a probe that is not OK shows its target on a line of its own under the row."""
    stream = out or sys.stdout
    color = stream.isatty() and not os.environ.get("NO_COLOR")
    width = shutil.get_terminal_size((120, 24)).columns
    ordered = sorted(results, key=lambda r: (-r.status, r.probe))
    rows = [(r.probe, r.type, r.status.name, _latency(r.duration)) for r in ordered]
    heads = ("PROBE", "TYPE", "STATUS", "LATENCY")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]
    indent = sum(widths) + 2 * len(widths)
    room = max(30, width - indent)  # never squeezed below 30 columns: long lines then run on
    lines = ["  ".join(h.ljust(w) for h, w in zip((*heads, "DETAIL"), (*widths, 0), strict=True)).rstrip()]
    for r, row in zip(ordered, rows, strict=True):
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        if color:
            cells = cells.replace(r.status.name, f"{ANSI[r.status]}{r.status.name}{RESET}", 1)
        wrapped = textwrap.wrap(_detail(r), room, break_on_hyphens=False) or [""]
        lines.append(f"{cells}  {wrapped[0]}".rstrip())
        lines.extend(" " * indent + more for more in wrapped[1:])
        if r.status is not Status.OK and targets.get(r.probe):
            where = f"target: {targets[r.probe]}"
            lines.append((" " * indent if indent + len(where) <= width else "  ") + where)  # a URL does not wrap
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    summary = ", ".join(f"{n} {s.name}" for s, n in counts.items() if n)
    overall = worst(results)
    verdict = f"{overall.name}: {summary}"
    lines += ["", f"{ANSI[overall]}{verdict}{RESET}" if color else verdict]
    for r in ordered:
        if r.trace:  # check -v: what happened, under the verdict
            lines += ["", f"--- {r.probe} ({r.type}, {r.status.name}) ---", *r.trace]
    stream.write("\n".join(lines) + "\n")


def render_json(results: Sequence[Result], targets: dict[str, str], out: TextIO | None = None) -> None:
    document = {
        "status": worst(results).label,
        "exit_code": int(worst(results)),
        "probes": [{**r.to_dict(), "target": targets.get(r.probe, "")} for r in results],
    }
    (out or sys.stdout).write(json.dumps(document, indent=2) + "\n")
