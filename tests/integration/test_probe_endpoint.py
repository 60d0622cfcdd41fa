"""GET /probe on the real daemon: off unless configured, bounded in runs at once and per second,
the run ends before Prometheus's scrape timeout, and what is asked never reaches the agent's
environment or a series label. (Side by side with blackbox_exporter: test_blackbox_compat.py.)"""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import BlackHole


def test_off_unless_configured(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("probes:\n  - {name: a, type: tcp, host: 127.0.0.1, port: 1}\n")
    agent = AgentProcess(path).start()
    try:
        code, body = agent.get("/probe?module=http_2xx&target=127.0.0.1:1")
        metrics = agent.get("/metrics")[1]
    finally:
        agent.stop()
    assert code == 404 and "the /probe endpoint is off" in body
    assert 'probe_agent_probe_endpoint_requests_total{module="",outcome="off"} 1.0' in metrics


def test_runs_are_bounded_and_end_before_the_scrape_timeout(tmp_path: Path, blackhole: BlackHole) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(
        "probe_endpoint:\n  max_concurrency: 2\n  max_per_second: 1000\n  modules:\n"
        "    tcp: {targets: [127.0.0.0/8], probe: {type: tcp, host: '{{target.host}}', port: '{{target.port}}'}}\n"
        "    web: {targets: [127.0.0.0/8], probe: {type: http, url: '{{target.url}}', timeout: 20s}}\n"
    )
    agent = AgentProcess(path, args=["--allow-empty"]).start()
    target = f"127.0.0.1:{blackhole.port}"  # accepts, never answers: each HTTP run takes its whole timeout
    answers: list[tuple[int, float]] = []

    def scrape() -> None:
        started = time.monotonic()
        request = urllib.request.Request(
            f"{agent.url}/probe?module=web&target={target}", headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                answers.append((resp.status, time.monotonic() - started))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, time.monotonic() - started))

    try:
        threads = [threading.Thread(target=scrape) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        metrics = agent.get("/metrics")[1]
        # a target that is no HOST:PORT (the environment stays out of it: see the unit tests) is refused
        code, body = agent.get("/probe?module=tcp&target=" + urllib.parse.quote("127.0.0.1:${HOME}"))
    finally:
        agent.stop()
    codes = sorted(code for code, _ in answers)
    assert codes == [200, 200, 429, 429, 429], answers
    # the module says 20 s; Prometheus would give up after 2: the answer comes at ~1.5 s
    assert all(seconds < 2.0 for code, seconds in answers if code == 200), answers
    assert 'probe_agent_probe_endpoint_requests_total{module="web",outcome="busy"} 3.0' in metrics
    assert code == 403 and "/root" not in body, body
