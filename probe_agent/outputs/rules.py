"""The Prometheus rules that watch the SLOs of a probes file (`probe-agent rules`).

An SLO names a group of probes (by name or tag) and objectives over their runs:
availability (the share of runs that succeed) and latency (the share of runs
faster than a threshold). The rules follow the SRE workbook's multiwindow,
multi-burn-rate alerts: a burn rate of B means the error budget of the window
would be spent in window / B. The error ratios come from counters
(probe_results_total) and histogram buckets (probe_run_duration_seconds, whose
bounds include every SLO threshold, so `le="0.3"` is exact).

Few samples make coarse ratios: at a 30 s interval an hour holds 120 runs, so
one failure is already an 8x burn rate against 99.9%; the short window of each
pair (5 m: 10 runs) keeps a single failure from paging on its own only when the
burn threshold times the budget exceeds one run in it. Probe more often, or
group more probes into the SLO, when the objective is tight.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from probe_agent.schema.slo import BurnWindow, Slo, slo_members


def _le(seconds: float) -> str:
    # as /metrics writes the bound (probe_agent.outputs.exposition.bucket_labels)
    return repr(float(seconds))


def _alternatives(words: list[str]) -> str:
    # a regex of literal words, in a PromQL string (whose backslashes are doubled)
    return "|".join(re.escape(w).replace("\\", "\\\\") for w in words)


def _selector(members: list[str]) -> str:
    return f'probe=~"{_alternatives(members)}"'


def _tagged(tags: list[str]) -> str:
    # probe_info's tags label is ",a,b," (probe_agent.outputs.exposition.tags_label)
    return f'probe_info{{tags=~".*,({_alternatives(tags)}),.*"}}'


def _members(slo: Slo, names: list[str], metric: str, *matchers: str, rate: bool = True) -> str:
    """`metric` (its rate over $window, with `rate`) for the SLO's probes: those it names, by
    name, or those with one of its tags, joined on probe_info in Prometheus. So a probe tagged
    after the rules were written is counted; `or` keeps a probe that is both once."""

    def vector(by_name: tuple[str, ...]) -> str:
        selected = metric + _matchers(*by_name, *matchers)
        return f"rate({selected}[$window])" if rate else selected

    parts = [vector((_selector(names),))] if names else []
    if slo.tags:
        parts.append(f"({vector(())} and on (probe) {_tagged(slo.tags)})")
    return " or ".join(parts)


_BAD = 'status=~"critical|unknown"'  # the runs an availability SLO counts against it


def _matchers(*matchers: str) -> str:
    return "{" + ",".join(matchers) + "}" if matchers else ""


def _windows(slo: Slo) -> list[str]:
    # the alerts' windows, and the SLO's own for the dashboards' error budget
    found = {w for b in (*slo.fast_burn, *slo.slow_burn) for w in (b.long, b.short)} | {slo.window}
    return sorted(found, key=_seconds)


def _seconds(window: str) -> int:
    return int(window[:-1]) * {"m": 60, "h": 3600, "d": 86400}[window[-1]]


def _burn_expr(record: str, slo_name: str, budget: float, windows: tuple[BurnWindow, ...]) -> str:
    terms = [
        f'(\n  {record}{w.long}{{slo="{slo_name}"}} > ({w.burn:g} * {budget:g})\n'
        f'and\n  {record}{w.short}{{slo="{slo_name}"}} > ({w.burn:g} * {budget:g})\n)'
        for w in windows
    ]
    return "\nor\n".join(terms)


def _resolves_within(windows: tuple[BurnWindow, ...]) -> str:
    """How long a burn alert can stay firing once the errors stop: each pair needs its short
    window to fall below the threshold, which it has at the latest when the window holds no
    error; so the longest short window bounds it (the long ones only keep it from paging)."""
    return max((w.short for w in windows), key=_seconds)


def rule_groups(slos: list[Slo], probes: list[Any]) -> list[dict[str, Any]]:
    """Prometheus rule groups (recording and alerting) for these SLOs."""
    groups = []
    for slo in slos:
        # by name: the probes it names; by tag: joined on probe_info in Prometheus (_members)
        names = [name for name in slo_members(slo, probes) if name in slo.probes]
        base_labels = {"slo": slo.name, **slo.labels}
        records: list[dict[str, Any]] = []
        alerts: list[dict[str, Any]] = []
        annotations = {"runbook_url": slo.runbook_url} if slo.runbook_url else {}
        # maintenance runs are counted as status="maintenance" (probe_agent.schema.maintenance)
        # ticks the agent could not start (status="skipped") are its condition: never in an SLO
        total_filter = 'status!~"maintenance|skipped"' if slo.maintenance == "exclude" else 'status!="skipped"'
        if slo.availability is not None:
            _add_sli(
                slo,
                records,
                alerts,
                base_labels,
                annotations,
                objective=("slo:availability:objective", slo.availability),
                ratio=(
                    "slo:probe_errors:ratio_rate",
                    _ratio(
                        _members(slo, names, "probe_results_total", _BAD),
                        _members(slo, names, "probe_results_total", total_filter),
                    ),
                ),
                names=(slo.alert_names.error_fast, slo.alert_names.error_slow),
                what=f"error rate of {slo.name} burns its {slo.availability:g}% budget",
            )
        if slo.latency is not None:
            at_le = f'le="{_le(slo.latency.threshold)}"'
            _add_sli(
                slo,
                records,
                alerts,
                base_labels,
                annotations,
                objective=("slo:latency:objective", slo.latency.target),
                ratio=(
                    "slo:probe_slow_runs:ratio_rate",
                    "1 - "
                    + _ratio(
                        _members(slo, names, "probe_run_duration_seconds_bucket", at_le),
                        _members(slo, names, "probe_run_duration_seconds_count"),
                    ),
                ),
                names=(slo.alert_names.latency_fast, slo.alert_names.latency_slow),
                what=f"runs of {slo.name} slower than {slo.latency.threshold * 1000:g} ms burn its {slo.latency.target:g}% budget",
            )
        alerts.append(
            {
                "alert": slo.alert_names.degraded,
                "expr": "max(\n  ("
                + _members(slo, names, "probe_success", rate=False)
                + ")\n  unless on (probe) probe_maintenance\n) == 0",
                "for": slo.degraded_for,
                "labels": {**base_labels, "severity": slo.page_severity},
                "annotations": {"summary": f"every probe of {slo.name} is failing", **annotations},
            }
        )
        groups.append({"name": f"slo:{slo.name}", "rules": records + alerts})
    return groups


def _ratio(bad: str, total: str) -> str:
    return f"sum(\n  {bad}\n)\n/\nsum(\n  {total}\n)"


def _add_sli(
    slo: Slo,
    records: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    labels: dict[str, str],
    annotations: dict[str, str],
    *,
    objective: tuple[str, float],
    ratio: tuple[str, str],  # the recording rule's name and its expression, with $window
    names: tuple[str, str],
    what: str,
) -> None:
    """One SLI's rules: its objective, its bad-event ratio per window, a fast and a slow burn alert."""
    objective_record, percent = objective
    ratio_record, ratio_template = ratio
    budget = round(1 - percent / 100, 12)
    records.append({"record": objective_record, "expr": f"vector({percent / 100:g})", "labels": {"slo": slo.name}})
    records.extend(
        {
            "record": f"{ratio_record}{window}",
            "expr": ratio_template.replace("$window", window),
            "labels": {"slo": slo.name},
        }
        for window in _windows(slo)
    )
    for name, windows, severity, pace in (
        (names[0], slo.fast_burn, slo.page_severity, "fast"),
        (names[1], slo.slow_burn, slo.ticket_severity, "slowly"),
    ):
        alerts.append(
            {
                "alert": name,
                "expr": _burn_expr(ratio_record, slo.name, budget, windows),
                "labels": {**labels, "severity": severity},
                "annotations": {
                    "summary": f"{what} {pace} ({' or '.join(f'{w.burn:g}x' for w in windows)})",
                    "description": f"Fires while both windows of a pair burn above the rate; stays firing up to"
                    f" {_resolves_within(windows)} after the errors stop, until the short windows"
                    f" ({', '.join(w.short for w in windows)}) no longer hold them.",
                    "resolves_within": _resolves_within(windows),
                    **annotations,
                },
            }
        )


class _RulesDumper(yaml.SafeDumper):
    """YAML for people to review: a multi-line expression as a literal block, as written."""


def _block_strings(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_RulesDumper.add_representer(str, _block_strings)


def dump_rules(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_RulesDumper, sort_keys=False, width=120, allow_unicode=True)
