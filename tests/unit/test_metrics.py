from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import generate_latest

from probe_agent.config import parse_config
from probe_agent.errors import Reason
from probe_agent.metrics import AgentMetrics
from probe_agent.model import Result, Status
from probe_agent.state import StateStore


def setup() -> tuple[StateStore, AgentMetrics]:
    store = StateStore()
    config = parse_config(
        "probes: [{name: web, type: http, url: 'http://u:pw-secret@127.0.0.1:1/', labels: {team: core}}, "
        "{name: port, type: tcp, host: 127.0.0.1, port: 1}]",
        env={},
    )
    store.sync(config.probes, {"web": "http://u:***@127.0.0.1:1/", "port": "127.0.0.1:1"})
    return store, AgentMetrics(store)


def test_probe_series_from_results() -> None:
    store, metrics = setup()
    store.record(Result("web", "http", Status.OK, None, "", 0.02, 1700000000.0,
                        {"connect": 0.001, "first_byte": 0.01}, {"status_code": 200, "cert_expiry_days": 3}, {}))
    store.record(Result("port", "tcp", Status.CRITICAL, Reason.CONNECT, "refused", 0.001, 1700000001.0, {}, {}, {}))
    get = metrics.registry.get_sample_value
    web = {"probe": "web", "type": "http", "team": "core"}
    port = {"probe": "port", "type": "tcp"}
    assert get("probe_success", web) == 1 and get("probe_success", port) == 0
    assert get("probe_status", port) == 2
    assert get("probe_duration_seconds_bucket", {**web, "le": "0.025"}) == 1
    assert get("probe_duration_seconds_bucket", {**web, "le": "0.01"}) == 0
    assert get("probe_duration_seconds_count", web) == 1
    assert get("probe_results_total", {**port, "status": "critical"}) == 1
    assert get("probe_failures_total", {**port, "reason": "connect"}) == 1
    assert get("probe_http_duration_seconds", {**web, "phase": "first_byte"}) == 0.01
    assert get("probe_http_status_code", web) == 200
    assert get("probe_last_run_timestamp_seconds", port) == 1700000001.0
    assert get("probe_info", {**web, "target": "http://u:***@127.0.0.1:1/"}) == 1
    text = generate_latest(metrics.registry).decode()
    assert "cert_expiry_days" not in text  # declared as threshold-only
    assert "pw-secret" not in text


def test_removed_probe_disappears() -> None:
    store, metrics = setup()
    store.record(Result("port", "tcp", Status.OK, None, "", 0.001, 1.0, {}, {}, {}))
    assert metrics.registry.get_sample_value("probe_success", {"probe": "port", "type": "tcp"}) == 1
    store.sync([], {})
    assert "probe=\"port\"" not in generate_latest(metrics.registry).decode()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_exposition_passes_promtool() -> None:
    store, metrics = setup()
    store.record(Result("web", "http", Status.WARNING, None, "slow", 0.3, 1.0, {"connect": 0.001}, {"status_code": 200}, {}))
    store.record(Result("port", "tcp", Status.CRITICAL, Reason.TIMEOUT, "t", 1.0, 1.0, {}, {}, {}))
    metrics.scheduler_lag.observe(0.001)
    out = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(metrics.registry), capture_output=True)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
