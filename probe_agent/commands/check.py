"""`probe-agent check`: run selected probes once, concurrently, through the same runner as the daemon."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from probe_agent.config.loader import AgentConfig
from probe_agent.core.errors import ConfigError, did_you_mean
from probe_agent.core.loopmonitor import LoopMonitor
from probe_agent.core.results import Result
from probe_agent.outputs.problems import stdout_gone
from probe_agent.outputs.reports import render_json, render_junit, render_nagios, render_prometheus, render_table, worst
from probe_agent.probes import close_shared
from probe_agent.probes.base import ProbeConfig
from probe_agent.runtime.runner import ProbeHandle, run_probe


def select(config: AgentConfig, names: Sequence[str], tags: Sequence[str]) -> list[ProbeConfig]:
    known = config.all_probe_names or tuple(p.name for p in config.probes)
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError([f"--probe {n}: no probe with that name{did_you_mean(n, known)}" for n in missing])
    chosen = [p for p in config.probes if (not names or p.name in names) and (not tags or set(tags) & set(p.tags))]
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

    from probe_agent.runtime.maintenance import MaintenanceBook

    book = MaintenanceBook(config.maintenance)  # the daemon's book, with only the file's windows
    book.refresh(dt.datetime.now(dt.UTC))
    tags = {p.name: p.tags for p in config.probes}
    for result in results:
        window = book.covering(result.probe, tags.get(result.probe, []))
        if window is not None:
            result.details["maintenance"] = window


def adhoc_name(target: str, fallback: str) -> str:
    """An ad-hoc probe's name, as Nagios and the table show it: the target's host[:port], never
    its user or password (`postgresql://probe:pw@db/app` is `db`), in the characters a name may
    have; the type when nothing of that is left."""
    import re
    from urllib.parse import urlsplit

    if "://" in target:
        try:
            parts = urlsplit(target)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return fallback
        where = f"{host}:{port}" if port else host
    else:
        where = target.rpartition("@")[2]  # HOST:PORT, maybe with user@ before it
    name = re.sub(r"[^A-Za-z0-9_.:-]+", "_", where.replace("[", "").replace("]", "")).strip("_")
    if not name:
        return fallback
    # a name starts with a letter or digit: an IPv6 address gets the type in front
    return (name if name[0].isalnum() else f"{fallback}_{name}")[:128]


def adhoc_config(
    probe_type: str,
    target: str,
    sets: Sequence[str],
    timeout_text: str,
    warning: str | None,
    critical: str | None,
    expect_status: Sequence[str] | None,
) -> str:
    """The probes file an ad-hoc check stands for, as YAML: validated as any other."""
    import yaml

    from probe_agent.probes import REGISTRY
    from probe_agent.probes.registry import ProbeTypeUnavailable
    from probe_agent.schema.fields import parse_duration

    if probe_type not in REGISTRY:
        known = tuple(sorted(REGISTRY))
        raise ConfigError(
            [f"unknown probe type {probe_type!r}{did_you_mean(probe_type, known)} (known: {', '.join(known)})"]
        )
    try:
        probe: dict[str, Any] = REGISTRY[probe_type].config_model.from_target(target)
    except ProbeTypeUnavailable as exc:
        raise ConfigError([str(exc)]) from None
    except ValueError as exc:
        raise ConfigError([f"{probe_type} {target}: {exc}"]) from None
    for item in sets:
        field, sep, value = item.partition("=")
        if not sep:
            raise ConfigError([f"--set {item}: expected FIELD=VALUE"])
        probe[field] = yaml.safe_load(value) if value else ""
    try:
        timeout = parse_duration(timeout_text)
    except ValueError as exc:
        raise ConfigError([f"--timeout: {exc}"]) from None
    limits = {level: value for level, value in (("warning", warning), ("critical", critical)) if value}
    if limits:
        probe["thresholds"] = {"duration": limits}
    if expect_status:
        probe["expect_status"] = list(expect_status)
    entry = {
        "name": adhoc_name(target, probe_type),
        "type": probe_type,
        "timeout": timeout_text,
        "interval": f"{max(timeout * 2, 30):g}s",
        **probe,
    }
    return yaml.safe_dump({"probes": [entry]})


def report(
    fmt: str, results: list[Result], config: AgentConfig, probes: list[ProbeConfig], perfdata: str = "default"
) -> int:
    """Print `check` results in the format asked; the check exit code (the worst status)."""
    targets = {p.name: config.redactor(p.name).redact(p.target()) for p in probes}
    try:
        if fmt == "nagios":
            render_nagios(results, {p.name: p for p in probes}, sys.stdout, perfdata)
        elif fmt == "junit":
            render_junit(results, targets, sys.stdout)
        elif fmt == "prometheus":
            render_prometheus(results, config, probes, sys.stdout)
        else:
            (render_json if fmt == "json" else render_table)(results, targets)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head -1`: the state is still the exit code
        stdout_gone()
    return int(worst(results))
