"""A real Prometheus scrapes a running agent and finds probe_success through its query API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port
from tests.helpers.processes import demo_shop, wait_port

pytestmark = pytest.mark.service("prometheus")


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian package) not installed")
def test_prometheus_scrapes_probe_success(tmp_path: Path) -> None:
    with demo_shop() as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(f"probes:\n  - {{name: shop, type: http, url: '{shop}/health/liveness', interval: 1s, timeout: 500ms}}\n")
        agent = AgentProcess(config).start()
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: probe-agent\n    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n"
        )
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(prom_port)
            query = urllib.parse.urlencode({"query": 'probe_success{job="probe-agent",probe="shop"}'})
            deadline, series = time.monotonic() + 30, []
            while time.monotonic() < deadline and not series:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?{query}", timeout=5) as resp:
                        series = json.load(resp)["data"]["result"]
                except urllib.error.HTTPError as exc:
                    # the port opens before the storage is ready: 503 until then
                    assert exc.code == 503, exc
                time.sleep(0.5)
            assert series, "Prometheus never saw probe_success"
            assert series[0]["metric"]["type"] == "http" and series[0]["value"][1] == "1"
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/targets", timeout=5) as resp:
                targets = json.load(resp)["data"]["activeTargets"]
            assert targets[0]["health"] == "up" and targets[0]["lastError"] == ""
        finally:
            prom.terminate()
            prom.wait(10)
            agent.stop()
