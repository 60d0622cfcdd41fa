"""Maintenance windows on the real daemon: a probe in one still runs, reads MAINTENANCE, fails
nothing, and is counted apart; ad hoc windows come and go through the CLI and the lifecycle
endpoint, which stays closed without --web.enable-lifecycle."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port


def config(tmp_path: Path, window: str = "") -> Path:
    """Two critical probes of closed ports (always failing) and one that passes (the agent's
    own port is not known yet: a listening socket of the test's stands in)."""
    path = tmp_path / "probes.yaml"
    path.write_text(f"""
defaults: {{interval: 500ms, timeout: 300ms}}
probes:
  - {{name: orders-db, type: tcp, host: 127.0.0.1, port: {free_port()}, critical: true, tags: [db]}}
  - {{name: cache, type: tcp, host: 127.0.0.1, port: {free_port()}, critical: true, tags: [cache]}}
{window}""")
    return path


def cli(agent: AgentProcess, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe_agent", "maintenance", *args, "--agent", agent.url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def probe_view(agent: AgentProcess, name: str) -> dict[str, object]:
    return next(p for p in agent.health()[1]["probes"] if p["name"] == name)


def metric(agent: AgentProcess, pattern: str) -> list[str]:
    return re.findall(pattern, agent.get("/metrics")[1], re.MULTILINE)


def test_scheduled_window_keeps_a_failing_probe_from_failing_health(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    window = f"""maintenance:
  - name: db-upgrade
    probes: [orders-db]
    reason: PostgreSQL 16 upgrade
    start: "{(now - dt.timedelta(minutes=5)).isoformat()}"
    end: "{(now + dt.timedelta(hours=1)).isoformat()}"
  - name: cache-nightly
    tags: [cache]
    every: [day]
    at: "{(now + dt.timedelta(hours=2)).strftime("%H:%M")}"
    duration: 30m
"""
    agent = AgentProcess(config(tmp_path, window)).start()
    try:
        agent.wait_for(
            lambda: probe_view(agent, "cache")["health"] == "failing" and probe_view(agent, "orders-db")["status"],
            what="cache to fail and orders-db to have run",
        )
        view = probe_view(agent, "orders-db")
        assert view["health"] == "maintenance" and view["maintenance"] == "db-upgrade"
        assert view["status"] == "critical"  # the real result is still there to read
        # only cache, outside its window (two hours from now), fails /health
        code, body = agent.health()
        assert code == 503 and body["status"] == "failing"
        ready = json.loads(agent.get("/health/ready")[1])
        assert ready["failing"] == ["cache"] and ready["maintenance"] == ["orders-db"]
        agent.wait_for(
            lambda: metric(
                agent, r'^probe_results_total\{probe="orders-db",status="maintenance",type="tcp"\} ([1-9][\d.]*)$'
            ),
            what="maintenance runs counted",
        )
        assert metric(agent, r'^probe_maintenance\{probe="orders-db",type="tcp",window="db-upgrade"\} 1.0$')
        assert not metric(agent, r'^probe_maintenance\{probe="cache"')
        # not counted as failures or in the histogram the SLOs read
        # (a status's series is born with its first result: none, or 0 if something made it)
        assert metric(agent, r'^probe_results_total\{probe="orders-db",status="critical",type="tcp"\} (\S+)$') in (
            [],
            ["0.0"],
        )
        assert metric(agent, r'^probe_run_duration_seconds_count\{probe="orders-db",type="tcp"\} (\S+)$') == ["0.0"]
        assert metric(agent, r'^probe_healthy\{probe="orders-db",type="tcp"\} (\S+)$') == [
            "0.0"
        ]  # the truth, for dashboards
        listed = cli(agent, "list")
        assert listed.returncode == 0, listed.stderr
        assert "db-upgrade (scheduled): active until" in listed.stdout and "PostgreSQL 16 upgrade" in listed.stdout
        assert "cache-nightly (scheduled): inactive" in listed.stdout
        started = [e for e in agent.log_entries() if e.get("msg") == "maintenance window started"]
        assert [e["window"] for e in started] == ["db-upgrade"]
    finally:
        agent.stop()


def test_ad_hoc_window_from_the_cli_starts_and_ends(tmp_path: Path) -> None:
    agent = AgentProcess(config(tmp_path), args=["--web.enable-lifecycle"]).start()
    try:
        agent.wait_for(lambda: agent.health()[0] == 503, what="both probes to fail")
        started = cli(
            agent,
            "start",
            "--tag",
            "db",
            "--tag",
            "cache",
            "--for",
            "10m",
            "--reason",
            "failover drill",
            "--name",
            "drill",
        )
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("maintenance drill started, until ")
        code, body = agent.health()
        assert code == 200, body  # nothing critical is failing outside a window now
        assert {p["health"] for p in body["probes"]} == {"maintenance"}
        # a request that covers nothing, or is malformed, is refused with the reason
        refused = cli(agent, "start", "--probe", "ordres-db")
        assert refused.returncode == 1 and "covers no probe" in refused.stderr
        bad = cli(agent, "start", "--probe", "orders-db", "--for", "soon")
        assert bad.returncode == 1 and "400" in bad.stderr and "soon" in bad.stderr
        for raw in (
            b"not json",
            b"[1, 2]",
            b'{"probes": ["orders-db"], "until": "later"}',
            b"{" * 200_000,
            b"[" * 30_000 + b"]" * 30_000,
            b'{"probes": "orders-db"}',
            b'{"probes": ["orders-db"], "duration": "-5m"}',
        ):
            request = urllib.request.Request(f"{agent.url}/-/maintenance", data=raw, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused_info:
                urllib.request.urlopen(request, timeout=10)
            assert refused_info.value.code == 400, raw[:40]
            assert json.loads(refused_info.value.read())["status"] == "rejected"
        ended = cli(agent, "end", "--name", "drill")
        assert ended.returncode == 0 and ended.stdout.strip() == "maintenance drill ended"
        assert agent.health()[0] == 503
        again = cli(agent, "end", "--name", "drill")
        assert again.returncode == 1 and "404" in again.stderr
        ended_log = [e for e in agent.log_entries() if e.get("msg") == "maintenance window ended"]
        assert [e["window"] for e in ended_log] == ["drill"]
    finally:
        agent.stop()


def test_ad_hoc_window_needs_the_lifecycle_switch(tmp_path: Path) -> None:
    agent = AgentProcess(config(tmp_path)).start()
    try:
        refused = cli(agent, "start", "--probe", "orders-db")
        assert refused.returncode == 1 and "403" in refused.stderr and "--web.enable-lifecycle" in refused.stderr
        assert probe_view(agent, "orders-db")["maintenance"] is None
        unreachable = subprocess.run(
            [sys.executable, "-m", "probe_agent", "maintenance", "list", "--agent", f"http://127.0.0.1:{free_port()}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert unreachable.returncode == 1 and "cannot reach the agent" in unreachable.stderr
        assert "Traceback" not in unreachable.stderr + refused.stderr
    finally:
        agent.stop()


def test_check_tells_the_truth_and_names_the_window(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    window = f"""maintenance:
  - {{name: db-upgrade, probes: [orders-db], start: "{(now - dt.timedelta(minutes=1)).isoformat()}",
     end: "{(now + dt.timedelta(hours=1)).isoformat()}"}}
"""
    out = subprocess.run(
        [sys.executable, "-m", "probe_agent", "check", "-c", str(config(tmp_path, window))],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 2, out.stdout + out.stderr  # both refused: CRITICAL, window or not
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith(("orders-db", "cache"))}
    assert "[in maintenance window db-upgrade]" in rows["orders-db"]
    assert "maintenance" not in rows["cache"]
