"""`probe-agent rules`: the generated rules pass promtool, and fire as the SRE workbook says
when fed series shaped as the agent exports them (promtool test rules)."""

from __future__ import annotations

import shutil
import subprocess
import typing
from pathlib import Path

import pytest
import yaml

from probe_agent.cli import main
from probe_agent.config.loader import parse_config
from probe_agent.core.errors import ConfigError

CONFIG = """
probes:
  - {name: checkout-flow, type: tcp, host: 127.0.0.1, port: 1, interval: 15s, tags: [shop]}
  - {name: cart.api, type: tcp, host: 127.0.0.1, port: 1, interval: 15s, tags: [shop]}
  - {name: other, type: tcp, host: 127.0.0.1, port: 1}
slos:
  - name: checkout
    tags: [shop]
    availability: 99.9
    latency: {threshold: 300ms, target: 99}
    runbook_url: https://runbooks.example/slo
    labels: {team: storefront}
"""


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian package prometheus; scripts/bootstrap.sh --test)")
    return found


def write_rules(tmp_path: Path, config: str = CONFIG) -> Path:
    (tmp_path / "probes.yaml").write_text(config)
    out = tmp_path / "slo-rules.yml"
    assert main(["rules", "-c", str(tmp_path / "probes.yaml"), "-o", str(out)]) == 0
    return out


def test_rules_pass_promtool_check(tmp_path: Path, promtool: str) -> None:
    rules = write_rules(tmp_path)
    run = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    groups = yaml.safe_load(rules.read_text())["groups"]
    names = [r.get("alert") for g in groups for r in g["rules"] if "alert" in r]
    assert names == [
        "HighErrorRateFastBurn",
        "HighErrorRateSlowBurn",
        "HighLatencyFastBurn",
        "HighLatencySlowBurn",
        "ServiceDegraded",
    ]


def test_slo_latency_becomes_a_bucket_bound_of_its_probes_only() -> None:
    config = parse_config(CONFIG, env={})
    buckets = {p.name: p.buckets for p in config.probes}
    assert 0.3 in buckets["checkout-flow"] and 0.3 in buckets["cart.api"] and 0.3 not in buckets["other"]


def test_slo_errors_name_the_slo_and_the_probe() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            CONFIG + "  - {name: typo, probes: [checkout-flwo], availability: 99}\n"
            "  - {name: none, tags: [nothing], availability: 99}\n"
            "  - {name: empty, probes: [other]}\n",
            env={},
        )
    assert info.value.problems == [
        "slos[3] (empty): set availability, latency or both",
        "slos[1] (typo): probes: no probe named 'checkout-flwo' (did you mean 'checkout-flow'?)",
        "slos[2] (none): no probe has any of the tags nothing",
    ]


def series(probe: str, status: str, per_15s: str) -> dict[str, str]:
    return {
        "series": f'probe_results_total{{probe="{probe}",type="tcp",status="{status}",instance="a:9110",job="probe-agent"}}',
        "values": per_15s,
    }


def buckets(probe: str, le: str, per_15s: str) -> dict[str, str]:
    return {
        "series": f'probe_run_duration_seconds_bucket{{probe="{probe}",type="tcp",le="{le}",instance="a:9110",job="probe-agent"}}',
        "values": per_15s,
    }


def count(probe: str, per_15s: str) -> dict[str, str]:
    return {
        "series": f'probe_run_duration_seconds_count{{probe="{probe}",type="tcp",instance="a:9110",job="probe-agent"}}',
        "values": per_15s,
    }


def success(probe: str, values: str) -> dict[str, str]:
    return {
        "series": f'probe_success{{probe="{probe}",type="tcp",instance="a:9110",job="probe-agent"}}',
        "values": values,
    }


def info(probe: str, tags: str | None = ",shop,") -> dict[str, str]:
    """probe_info as the agent exports it: its tags as one label, ',a,b,' (Consul's form)."""
    tagged = f',tags="{tags}"' if tags else ""
    return {
        "series": f'probe_info{{probe="{probe}",type="tcp",target="127.0.0.1:1"{tagged},instance="a:9110",job="probe-agent"}}',
        "values": "1x240",
    }


def promtool_test(promtool: str, rules: Path, cases: list[dict[str, typing.Any]]) -> None:
    """Feed the generated rules these cases (`promtool test rules`, 15 s evaluations)."""
    tests = {"rule_files": [str(rules)], "evaluation_interval": "15s", "tests": cases}
    test_file = rules.with_name("slo_test.yml")
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


ANNOTATIONS: dict[str, dict[str, str]] = {}  # alert name -> its annotations, read from the generated rules


def fired(name: str, severity: str) -> dict[str, object]:
    return {
        "exp_labels": {"slo": "checkout", "team": "storefront", "severity": severity},
        "exp_annotations": ANNOTATIONS[name],
    }


def both_healthy() -> list[dict[str, str]]:
    """Both probes of the SLO pass every run (one run per 15 s sample)."""
    return [
        series("checkout-flow", "ok", "0+1x240"),
        series("checkout-flow", "critical", "0x240"),
        series("cart.api", "ok", "0+1x240"),
        series("cart.api", "critical", "0x240"),
    ]


def fires(at: str, name: str, severity: str) -> dict[str, object]:
    return {"eval_time": at, "alertname": name, "exp_alerts": [fired(name, severity)]}


def quiet(at: str, name: str) -> dict[str, object]:
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def test_generated_rules_fire_as_the_workbook_says(tmp_path: Path, promtool: str) -> None:
    rules = write_rules(tmp_path)
    for group in yaml.safe_load(rules.read_text())["groups"]:
        ANNOTATIONS.update({r["alert"]: r["annotations"] for r in group["rules"] if "alert" in r})
    # interval 15s: every probe runs once per 15 s sample; counters as the agent exports them
    healthy = "0+1x240"
    cases: list[dict[str, typing.Any]] = [
        {  # both probes fail from the start: an error ratio of 1 is a 1000x burn of 99.9%
            "interval": "15s",
            "input_series": [
                series("checkout-flow", "ok", "0x240"),
                series("checkout-flow", "critical", healthy),
                series("cart.api", "ok", "0x240"),
                series("cart.api", "critical", healthy),
                buckets("checkout-flow", "0.3", healthy),
                count("checkout-flow", healthy),
                success("checkout-flow", "0x240"),
                success("cart.api", "0x240"),
            ],
            "alert_rule_test": [
                fires("5m", "HighErrorRateFastBurn", "page"),
                quiet("5m", "HighLatencyFastBurn"),
                {
                    "eval_time": "5m",
                    "alertname": "ServiceDegraded",
                    "exp_alerts": [
                        {
                            "exp_labels": {"slo": "checkout", "team": "storefront", "severity": "page"},
                            "exp_annotations": {
                                "summary": "every probe of checkout is failing",
                                "runbook_url": "https://runbooks.example/slo",
                            },
                        }
                    ],
                },
                # the slow burn needs its 2 h short window above 3.6x: it is, at once
                fires("30m", "HighErrorRateSlowBurn", "ticket"),
            ],
        },
        {  # one probe of two fails: 50% errors is still a fast burn; the SLO is not down
            "interval": "15s",
            "input_series": [
                series("checkout-flow", "ok", healthy),
                series("checkout-flow", "critical", "0x240"),
                series("cart.api", "ok", "0x240"),
                series("cart.api", "critical", healthy),
                success("checkout-flow", "1x240"),
                success("cart.api", "0x240"),
            ],
            "alert_rule_test": [
                fires("10m", "HighErrorRateFastBurn", "page"),
                quiet("10m", "ServiceDegraded"),
            ],
        },
        {  # all runs succeed, a third of them slower than 300 ms: the latency budget (1%) burns
            "interval": "15s",
            "input_series": [
                *both_healthy(),
                buckets("checkout-flow", "0.3", "0+2x240"),
                count("checkout-flow", "0+3x240"),
            ],
            "alert_rule_test": [
                fires("10m", "HighLatencyFastBurn", "page"),
                quiet("10m", "HighErrorRateFastBurn"),
            ],
        },
        {  # 20 minutes of failures, then recovery: the long windows still remember them, the
            # short ones no longer see any: the page stops (the workbook's AND of both windows)
            "interval": "15s",
            "input_series": [
                series("checkout-flow", "ok", "0x80 0+1x160"),
                series("checkout-flow", "critical", "0+1x80 80x160"),
                series("cart.api", "ok", "0x80 0+1x160"),
                series("cart.api", "critical", "0+1x80 80x160"),
                buckets("checkout-flow", "0.3", healthy),
                count("checkout-flow", healthy),
            ],
            "alert_rule_test": [
                fires("10m", "HighErrorRateFastBurn", "page"),
                # resolved within its resolves_within (30m) of the last error (20m), and a sample
                quiet("50m15s", "HighErrorRateFastBurn"),
            ],
        },
        {  # healthy and fast: nothing fires
            "interval": "15s",
            "input_series": [
                *both_healthy(),
                buckets("checkout-flow", "0.3", healthy),
                count("checkout-flow", healthy),
            ],
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": name, "exp_alerts": []}
                for name in (
                    "HighErrorRateFastBurn",
                    "HighErrorRateSlowBurn",
                    "HighLatencyFastBurn",
                    "HighLatencySlowBurn",
                )
            ],
        },
    ]
    for case in cases:
        case["input_series"] += [info("checkout-flow"), info("cart.api")]
    promtool_test(promtool, rules, cases)


def test_rules_without_slos_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "probes.yaml").write_text("probes:\n  - {name: a, type: tcp, host: h, port: 1}\n")
    assert main(["rules", "-c", str(tmp_path / "probes.yaml")]) == 1
    assert "no slos" in capsys.readouterr().err


@pytest.mark.parametrize(("mode", "ratio"), [("exclude", "0.1"), ("good", "0.05")])
def test_maintenance_runs_are_left_out_or_counted_good(tmp_path: Path, promtool: str, mode: str, ratio: str) -> None:
    """One probe, 1 run in 10 failing, and as many runs again inside a maintenance window
    (status="maintenance", as the agent counts them): `exclude` keeps the ratio at 0.1, `good`
    halves it; neither counts a maintenance run as an error. ServiceDegraded stays quiet while
    the only failing probe is in maintenance. As many ticks again that the agent could not start
    (status="skipped", overloaded) count in neither mode."""
    config = CONFIG.replace(
        "    labels: {team: storefront}\n", f"    labels: {{team: storefront}}\n    maintenance: {mode}\n"
    )
    rules = write_rules(tmp_path, config)
    cases: list[dict[str, typing.Any]] = [
        {
            "interval": "15s",
            "input_series": [
                series("checkout-flow", "ok", "0+9x240"),
                series("checkout-flow", "critical", "0+1x240"),
                series("checkout-flow", "maintenance", "0+10x240"),
                series("checkout-flow", "skipped", "0+10x240"),
                info("checkout-flow"),
                success("checkout-flow", "0x240"),
                {
                    "series": 'probe_maintenance{probe="checkout-flow",type="tcp",instance="a:9110",job="probe-agent",window="w"}',
                    "values": "1x240",
                },
            ],
            "promql_expr_test": [
                {
                    "expr": 'round(slo:probe_errors:ratio_rate5m{slo="checkout"}, 0.0001)',
                    "eval_time": "10m",
                    "exp_samples": [{"labels": '{slo="checkout"}', "value": float(ratio)}],
                }
            ],
            "alert_rule_test": [quiet("10m", "ServiceDegraded")],
        }
    ]
    promtool_test(promtool, rules, cases)


def test_an_slo_by_tag_counts_a_probe_tagged_after_the_rules_were_written(tmp_path: Path, promtool: str) -> None:
    """Membership by tag is joined on probe_info's tags in Prometheus, not frozen into a list of
    names: a probe tagged `shop` later (another agent's, or after a change nobody regenerated
    the rules for) is counted; an untagged one is not."""
    rules = write_rules(tmp_path)
    healthy = "0+1x240"
    cases: list[dict[str, typing.Any]] = [
        {
            "interval": "15s",
            "input_series": [
                *both_healthy(),
                series("late", "ok", "0x240"),
                series("late", "critical", healthy),  # fails every run
                series("other", "critical", healthy),  # fails too, but is not the SLO's
                info("checkout-flow"),
                info("cart.api"),
                info("late", ",payments,shop,"),
                info("other", None),
            ],
            "promql_expr_test": [
                {  # a third of the SLO's runs fail: late's, not other's
                    "expr": 'round(slo:probe_errors:ratio_rate5m{slo="checkout"}, 0.0001)',
                    "eval_time": "10m",
                    "exp_samples": [{"labels": '{slo="checkout"}', "value": 0.3333}],
                }
            ],
        }
    ]
    promtool_test(promtool, rules, cases)


def test_rules_are_readable_and_say_how_long_a_page_lasts(tmp_path: Path, promtool: str) -> None:
    """Multi-line expressions as YAML blocks, not escaped one-line strings; each burn-rate alert
    says how long it stays firing once the errors stop (its longest short window), and the
    workbook's test below holds the page to it."""
    text = write_rules(tmp_path).read_text()
    assert "\\n" not in text and '\\"' not in text, "an escaped expression"
    assert "expr: |" in text
    groups = yaml.safe_load(text)["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    ratio = next(r for g in groups for r in g["rules"] if r.get("record") == "slo:probe_errors:ratio_rate5m")
    assert ratio["expr"].count("\n") >= 2, ratio["expr"]  # numerator / denominator on lines of their own
    assert alerts["HighErrorRateFastBurn"]["annotations"]["resolves_within"] == "30m"
    assert alerts["HighErrorRateSlowBurn"]["annotations"]["resolves_within"] == "2h"
    assert "30m after the errors stop" in alerts["HighErrorRateFastBurn"]["annotations"]["description"]
