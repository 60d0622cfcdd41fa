"""What `check` writes: a table for people (the default), JSON, a Nagios/Icinga plugin's output,
JUnit XML for CI, and the Prometheus text format for node_exporter's textfile collector. The
daemon's /probe endpoint writes the same table."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TextIO
from xml.etree import ElementTree

from probe_agent.config.loader import AgentConfig
from probe_agent.core.errors import Reason
from probe_agent.core.results import Result, Status
from probe_agent.core.units import duration_text, unit_of, value_text
from probe_agent.outputs.problems import PLUGIN, plugin_ascii
from probe_agent.probes import REGISTRY
from probe_agent.probes.base import ProbeConfig
from probe_agent.schema.fields import Limit, Threshold


def worst(results: Sequence[Result]) -> Status:
    return max((r.status for r in results), default=Status.UNKNOWN)


def _why(result: Result) -> str:
    return f"{result.reason.value}: {result.message}" if result.reason else result.message


# --- Nagios / Icinga -------------------------------------------------------------


def _perf_number(value: float) -> str:
    """Plain decimal, as the plugin guidelines' grammar has it: 3668920000, not 3.66892e+09
    (PNP4Nagios-style parsers misread the exponent); six places after the point at most."""
    if float(value).is_integer() and abs(value) < 1e18:
        return str(int(value))
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _nagios_range(limit: Limit | None) -> str:
    """A limit as a Nagios threshold range: '> 1' alerts above 1 ('1'), '< 7' below 7 ('7:'), a
    range as written ('@0:10')."""
    return "" if limit is None else limit.nagios(_perf_number)


def _perf_label(text: str) -> str:
    return "'" + text.replace("'", "_").replace("=", "_") + "'"


# check --perfdata: which measured values become perfdata items
PERFDATA_DEFAULT, PERFDATA_ALL = "default", "all"


def _wanted(result: Result, thresholds: dict[str, Threshold], which: str) -> list[str]:
    measured = ["duration", *(name for name in result.values if not result.value_labels.get(name))]
    if which == PERFDATA_ALL:
        return measured
    if which != PERFDATA_DEFAULT:  # a list of value names, in the order given
        named = [name.strip() for name in which.split(",")]
        return [name for name in named if name in measured]
    # the run's duration, what the type shows at a glance, then what has a threshold
    shown = REGISTRY[result.type].shown_values if result.type in REGISTRY else ()
    order = ["duration", *shown, *thresholds]
    return [name for name in dict.fromkeys(order) if name in measured]


def perfdata(results: Sequence[Result], configs: dict[str, ProbeConfig], which: str = PERFDATA_DEFAULT) -> list[str]:
    """`'label'=value[UOM];warn;crit;min;` for the values `which` names (check --perfdata):
    by default the duration, the type's shown values and those with thresholds."""
    items = []
    for r in results:
        thresholds = configs[r.probe].thresholds if r.probe in configs else {}
        measured = {"duration": r.duration, **r.values}
        for name in _wanted(r, thresholds, which):
            limits = thresholds.get(name, Threshold())
            uom = unit_of(name)
            low = "0" if uom else ""
            items.append(
                f"{_perf_label(f'{r.probe}/{name}')}={_perf_number(measured[name])}{uom};"
                f"{_nagios_range(limits.warning)};{_nagios_range(limits.critical)};{low};"
            )
    return items


def render_nagios(
    results: Sequence[Result], configs: dict[str, ProbeConfig], out: TextIO, which: str = PERFDATA_DEFAULT
) -> None:
    """The first line is the status Nagios shows, with perfdata after `|`; a line per probe after
    it, the worst first (the plugin's long output)."""
    overall = worst(results)
    bad = sorted((r for r in results if r.status is not Status.OK), key=lambda r: (-r.status, r.probe))
    if bad:
        first = bad[0]
        worst_count = sum(1 for r in results if r.status is first.status)
        summary = f"{worst_count} of {len(results)} {first.status.label}: {first.probe} {_why(first)}".rstrip()
        if len(bad) > 1:
            summary += f" (and {len(bad) - 1} more not ok)"
    elif len(results) == 1:  # the figure, as check_http gives its response time
        summary = f"{results[0].probe}: ok in {duration_text(results[0].duration)}"
    elif results:
        slowest = max(results, key=lambda r: r.duration)
        summary = f"{len(results)} of {len(results)} ok, slowest {slowest.probe} in {duration_text(slowest.duration)}"
    else:
        summary = "no probes"
    # '|' separates perfdata: it may not appear in the text
    out.write(
        plugin_ascii(
            f"{PLUGIN} {overall.name} - {summary.replace('|', '/')} | {' '.join(perfdata(results, configs, which))}\n"
        )
    )
    for r in sorted(results, key=lambda r: (-r.status, r.probe)):
        line = f"{r.status.name} {r.probe} ({r.type}, {r.duration * 1000:.0f} ms){': ' + _why(r) if _why(r) else ''}"
        out.write(plugin_ascii(line.replace("|", "/")) + "\n")


# --- JUnit XML -------------------------------------------------------------------


def render_junit(results: Sequence[Result], targets: dict[str, str], out: TextIO) -> None:
    """A test case per probe: CRITICAL fails, UNKNOWN errs, WARNING passes with its message."""
    failures = sum(1 for r in results if r.status is Status.CRITICAL)
    errors = sum(1 for r in results if r.status is Status.UNKNOWN)
    suite = ElementTree.Element(
        "testsuite",
        name="probe-agent",
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{max((r.duration for r in results), default=0.0):.3f}",  # they ran at once
    )
    for r in sorted(results, key=lambda r: r.probe):
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"probe-agent.{r.type}", name=r.probe, time=f"{r.duration:.3f}"
        )
        if r.status is Status.CRITICAL:
            ElementTree.SubElement(
                case, "failure", message=_why(r), type=r.reason.value if r.reason else "threshold"
            ).text = f"target: {targets.get(r.probe, '')}\n{_why(r)}"
        elif r.status is Status.UNKNOWN:
            ElementTree.SubElement(
                case, "error", message=_why(r), type=r.reason.value if r.reason else "unknown"
            ).text = _why(r)
        if r.message and r.status is Status.WARNING:
            ElementTree.SubElement(case, "system-out").text = f"WARNING: {r.message}"
    root = ElementTree.Element("testsuites")
    root.append(suite)
    ElementTree.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n")


# --- Prometheus text format ---------------------------------------------------


def render_prometheus(
    results: Sequence[Result], config: AgentConfig, probes: Sequence[ProbeConfig], out: TextIO
) -> None:
    """The series the daemon would export after these runs, for node_exporter's textfile
    collector (no timestamps, as it wants)."""
    from probe_agent.outputs.exposition import ProbeExposition
    from probe_agent.runtime.state import StateStore

    store = StateStore()
    store.probes = store.plan_config(config.model_copy(update={"probes": list(probes)}))
    for result in results:
        store.record(result)
    out.write(ProbeExposition().render(list(store.probes.values())).decode())


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
