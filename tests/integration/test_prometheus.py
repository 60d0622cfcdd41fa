"""A real Prometheus scrapes a running agent and finds probe_success through its query API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.processes import demo_shop
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
