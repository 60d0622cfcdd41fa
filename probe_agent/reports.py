"""`check` output for other programs: a Nagios/Icinga plugin's, JUnit XML for CI, and the
Prometheus text format for node_exporter's textfile collector. The table and JSON are in
probe_agent.check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO
from xml.etree import ElementTree

from probe_agent.config import AgentConfig
from probe_agent.fields import Limit, Threshold
from probe_agent.model import Result, Status
from probe_agent.probe import ProbeConfig
from probe_agent.units import unit_of


def worst(results: Sequence[Result]) -> Status:
    return max((r.status for r in results), default=Status.UNKNOWN)


def _why(result: Result) -> str:
    return f"{result.reason.value}: {result.message}" if result.reason else result.message


# --- Nagios / Icinga -------------------------------------------------------------


def _nagios_range(limit: Limit | None) -> str:
    """A limit as a Nagios threshold range: '> 1' alerts above 1 ('1'), '< 7' below 7 ('7:')."""
    if limit is None:
        return ""
    return f"{limit.bound:g}:" if limit.op in ("<", "<=") else f"{limit.bound:g}"


def _perf_label(text: str) -> str:
    return "'" + text.replace("'", "_").replace("=", "_") + "'"


def perfdata(results: Sequence[Result], configs: dict[str, ProbeConfig]) -> list[str]:
    """`'label'=value[UOM];warn;crit;min;max` for each run's duration and measured values."""
    items = []
    for r in results:
        thresholds = configs[r.probe].thresholds if r.probe in configs else {}
        measured = {"duration": r.duration, **r.values}
        for name, value in measured.items():
            if r.value_labels.get(name):
                continue  # an info value (always 1) says nothing as a number
            limits = thresholds.get(name, Threshold())
            uom = unit_of(name)
            low = "0" if uom else ""
            items.append(
                f"{_perf_label(f'{r.probe}/{name}')}={value:g}{uom};"
                f"{_nagios_range(limits.warning)};{_nagios_range(limits.critical)};{low};"
            )
    return items


def render_nagios(results: Sequence[Result], configs: dict[str, ProbeConfig], out: TextIO) -> None:
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
    else:
        summary = f"{len(results)} of {len(results)} ok"
    # '|' separates perfdata: it may not appear in the text
    out.write(f"PROBE-AGENT {overall.name} - {summary.replace('|', '/')} | {' '.join(perfdata(results, configs))}\n")
    for r in sorted(results, key=lambda r: (-r.status, r.probe)):
        out.write(f"{r.status.name} {r.probe} ({r.type}, {r.duration * 1000:.0f} ms){': ' + _why(r) if _why(r) else ''}\n".replace("|", "/"))


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
        case = ElementTree.SubElement(suite, "testcase", classname=f"probe-agent.{r.type}", name=r.probe,
                                      time=f"{r.duration:.3f}")
        if r.status is Status.CRITICAL:
            ElementTree.SubElement(case, "failure", message=_why(r), type=r.reason.value if r.reason else "threshold").text = (
                f"target: {targets.get(r.probe, '')}\n{_why(r)}"
            )
        elif r.status is Status.UNKNOWN:
            ElementTree.SubElement(case, "error", message=_why(r), type=r.reason.value if r.reason else "unknown").text = _why(r)
        if r.message and r.status is Status.WARNING:
            ElementTree.SubElement(case, "system-out").text = f"WARNING: {r.message}"
    root = ElementTree.Element("testsuites")
    root.append(suite)
    ElementTree.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n")


# --- Prometheus text format ---------------------------------------------------


def render_prometheus(results: Sequence[Result], config: AgentConfig, probes: Sequence[ProbeConfig], out: TextIO) -> None:
    """The series the daemon would export after these runs, for node_exporter's textfile
    collector (no timestamps, as it wants)."""
    from probe_agent.exposition import ProbeExposition
    from probe_agent.state import StateStore

    store = StateStore()
    store.probes = store.plan_config(config.model_copy(update={"probes": list(probes)}))
    for result in results:
        store.record(result)
    out.write(ProbeExposition().render(list(store.probes.values())).decode())
