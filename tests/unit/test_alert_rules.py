"""deploy/alerts.yml is valid, and its alerts fire when they should (promtool test rules)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)


def test_rules_are_valid() -> None:
    out = subprocess.run(
        ["promtool", "check", "rules", str(HERE.parents[1] / "deploy" / "alerts.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_fire_as_intended() -> None:
    out = subprocess.run(
        ["promtool", "test", "rules", "alert_rules_test.yml"], cwd=HERE, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_has_a_case_that_fires_it() -> None:
    import yaml

    rules = yaml.safe_load((HERE.parents[1] / "deploy" / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    cases = yaml.safe_load((HERE / "alert_rules_test.yml").read_text())["tests"]
    fired = {c["alertname"] for t in cases for c in t["alert_rule_test"] if c["exp_alerts"]}
    assert alerts == fired, f"rules without a case that fires them: {alerts - fired}"


def test_dead_letter_queues_say_so_on_probe_info() -> None:
    from probe_agent.config.loader import parse_config
    from probe_agent.outputs.exposition import render_probe
    from probe_agent.runtime.state import StateStore

    config = parse_config(
        "probes:\n"
        "  - {name: dlq, type: amqp, queue: a.dlq}\n"
        "  - {name: work, type: amqp, queue: jobs, dlq: false}\n"
        "  - {name: web, type: tcp, host: h, port: 1}\n",
        env={},
    )
    store = StateStore()
    store.probes = store.plan_config(config)
    info = {name: render_probe(state, {})["probe_info"].decode() for name, state in store.probes.items()}
    assert 'dlq="true"' in info["dlq"] and 'dlq="false"' in info["work"] and "dlq" not in info["web"]


RUNBOOKS = "https://docs.example/probe-agent/alerts"  # where docs/alerts.md is served; see its top


def test_every_alert_links_its_runbook_section() -> None:
    """An alert that pages at 3 a.m. says where to start: runbook_url, one section of
    docs/alerts.md each, which exists."""
    import re

    import yaml

    rules = yaml.safe_load((HERE.parents[1] / "deploy" / "alerts.yml").read_text())
    page = (HERE.parents[1] / "docs" / "alerts.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-")) for h in re.findall(r"^## (.+)$", page, re.M)
    }
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        name = rule["alert"]
        assert rule["annotations"].get("runbook_url") == f"{RUNBOOKS}#{name.lower()}", name
        assert name.lower() in anchors, f"docs/alerts.md has no section '## {name}'"
