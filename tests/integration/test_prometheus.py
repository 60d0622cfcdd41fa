"""A real Prometheus scrapes a running agent and finds probe_success through its query API."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.processes import demo_shop, http_json
from tests.helpers.prometheus import prometheus

pytestmark = pytest.mark.service("prometheus")


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian package) not installed")
def test_prometheus_scrapes_probe_success(tmp_path: Path) -> None:
    with demo_shop() as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(f"probes:\n  - {{name: shop, type: http, url: '{shop}/health/liveness', interval: 1s, timeout: 500ms}}\n")
        agent = AgentProcess(config).start()
        try:
            with prometheus(tmp_path, f"  - job_name: probe-agent\n    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n") as prom:
                series = prom.query_until('probe_success{job="probe-agent",probe="shop"}')
                assert series[0]["metric"]["type"] == "http" and series[0]["value"][1] == "1"
                targets = prom.api("/api/v1/targets")["activeTargets"]
                assert targets[0]["health"] == "up" and targets[0]["lastError"] == ""
        finally:
            agent.stop()


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian package) not installed")
def test_generated_slo_rules_fire_fast_burn_soon_after_a_target_fails(tmp_path: Path) -> None:
    from probe_agent.cli import main

    with demo_shop() as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(
            f"probes:\n  - {{name: ready, type: http, url: '{shop}/health/readiness', interval: 1s, timeout: 500ms}}\n"
            "slos:\n  - {name: shop, probes: [ready], availability: 99.9, latency: {threshold: 250ms, target: 99}}\n"
        )
        rules = tmp_path / "slo-rules.yml"
        assert main(["rules", "-c", str(config), "-o", str(rules)]) == 0
        agent = AgentProcess(config).start()
        try:
            scrape = f"  - job_name: probe-agent\n    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n"
            with prometheus(tmp_path, scrape, rule_files=[rules]) as prom:
                prom.query_until('slo:probe_errors:ratio_rate5m{slo="shop"} == 0', timeout=30)  # healthy, rules evaluated
                assert not prom.api("/api/v1/alerts")["alerts"]
                assert http_json("POST", f"{shop}/admin/faults", b'{"endpoint": "readiness", "mode": "error"}') == 200
                failing_since = time.monotonic()
                prom.query_until('ALERTS{alertname="HighErrorRateFastBurn",alertstate="firing",slo="shop",severity="page"}',
                                 timeout=30)
                fired_after = time.monotonic() - failing_since
        finally:
            agent.stop()
    # a scrape (1 s) sees the first failed run, the next evaluation (1 s) fires: no `for`
    print(f"HighErrorRateFastBurn fired {fired_after:.1f} s after the target started failing")
    assert fired_after < 15
