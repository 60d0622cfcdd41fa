"""The agent cannot be silenced: failed reloads, reload storms, hung targets, pending and stale results."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import BlackHole
from tests.helpers.processes import demo_shop


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    with demo_shop() as url:
        yield url


def runs_by_probe(agent: AgentProcess) -> dict[str, float]:
    """Completed runs per probe (all statuses), from /metrics."""
    counts: dict[str, float] = {}
    for line in agent.get("/metrics")[1].splitlines():
        match = re.match(r'probe_results_total\{probe="([^"]+)",status="[a-z]+",type="[a-z_]+"\} (\S+)', line)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + float(match.group(2))
    return counts


def metric_value(agent: AgentProcess, series: str) -> float:
    for line in agent.get("/metrics")[1].splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in /metrics")


def test_reload_that_validates_but_cannot_build_keeps_probing(tmp_path: Path, shop: str) -> None:
    """The issue's reproduction: a CA file that does not exist, added by a reload."""
    config = tmp_path / "p.yaml"
    config.write_text(
        f'probes:\n- {{name: a, type: http, url: "{shop}/health/liveness", interval: 1s, timeout: 500ms}}\n'
    )
    agent = AgentProcess(config, args=["--web.enable-lifecycle"]).start()
    try:
        agent.wait_for(lambda: runs_by_probe(agent).get("a", 0) >= 1, what="a first run")
        with config.open("a") as f:
            f.write('- {name: b, type: http, url: "https://127.0.0.1:1/", ca_file: /nonexistent}\n')
        validate = subprocess.run(
            [sys.executable, "-m", "probe_agent", "validate", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert validate.returncode == 1
        assert "probe 'b': ca_file: cannot load /nonexistent: No such file or directory" in validate.stderr
        check = subprocess.run(
            [sys.executable, "-m", "probe_agent", "check", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode == 3 and "Traceback" not in check.stderr + check.stdout

        code, body = agent.post("/-/reload")
        assert code == 400, body
        assert json.loads(body)["errors"] == ["probe 'b': ca_file: cannot load /nonexistent: No such file or directory"]
        assert metric_value(agent, "probe_agent_config_last_reload_successful") == 0
        before = runs_by_probe(agent)["a"]
        time.sleep(2.5)
        assert runs_by_probe(agent)["a"] >= before + 2  # probe a never stopped
        assert agent.get("/health/live")[0] == 200
    finally:
        assert agent.stop() == 0


def test_reload_storm_never_lowers_the_rate_of_unchanged_probes(tmp_path: Path, shop: str) -> None:
    """40 reloads in 10 s, half of them changing one probe: the 20 others keep their 1 s rate."""
    probes = "".join(
        f'  - {{name: p{i}, type: http, url: "{shop}/health/liveness", interval: 1s, timeout: 500ms}}\n'
        for i in range(20)
    )
    config = tmp_path / "probes.yaml"
    base = f"probes:\n{probes}"
    config.write_text(
        base + f'  - {{name: changing, type: http, url: "{shop}/health/liveness?v=0", interval: 1s, timeout: 500ms}}\n'
    )
    agent = AgentProcess(config, args=["--web.enable-lifecycle"]).start()
    try:
        agent.wait_for(
            lambda: len([v for k, v in runs_by_probe(agent).items() if k.startswith("p") and v >= 1]) == 20,
            timeout=10,
            what="every probe's first run",
        )
        before, started = runs_by_probe(agent), time.monotonic()
        for i in range(40):
            config.write_text(
                base + f'  - {{name: changing, type: http, url: "{shop}/health/liveness?v={i % 2}",'
                " interval: 1s, timeout: 500ms}\n"
            )
            assert agent.post("/-/reload")[0] == 200
            time.sleep(0.25)
        after, elapsed = runs_by_probe(agent), time.monotonic() - started
        ran = {name: after[name] - before[name] for name in before if name.startswith("p")}
        # at a 1 s rate over `elapsed` seconds each probe runs floor(elapsed) or one more times
        print(
            f"reload storm: 40 reloads in {elapsed:.1f}s; runs per unchanged probe {min(ran.values()):.0f}-{max(ran.values()):.0f}"
        )
        assert min(ran.values()) >= int(elapsed) - 1, (elapsed, ran)
        assert metric_value(agent, "probe_agent_config_last_reload_successful") == 1
    finally:
        assert agent.stop() == 0


def test_hung_target_does_not_starve_healthy_probes(tmp_path: Path, shop: str, blackhole: BlackHole) -> None:
    """200 probes against a port that accepts and never answers; 5 healthy 1 s probes keep over 95% of their runs."""
    hung = "".join(
        f"  - {{name: hung-{i}, type: http, url: 'http://127.0.0.1:{blackhole.port}/', interval: 10s, timeout: 8s}}\n"
        for i in range(200)
    )
    healthy = "".join(
        f'  - {{name: ok-{i}, type: http, url: "{shop}/health/liveness", interval: 1s, timeout: 500ms}}\n'
        for i in range(5)
    )
    config = tmp_path / "probes.yaml"
    config.write_text(f"probes:\n{hung}{healthy}")
    agent = AgentProcess(config).start()
    try:
        agent.wait_for(lambda: all(runs_by_probe(agent).get(f"ok-{i}", 0) >= 1 for i in range(5)), what="first runs")
        time.sleep(1)  # every hung probe has had its first tick by now or is about to
        before, started = runs_by_probe(agent), time.monotonic()
        time.sleep(12)
        after, elapsed = runs_by_probe(agent), time.monotonic() - started
        healthy_runs = sum(after[f"ok-{i}"] - before[f"ok-{i}"] for i in range(5))
        expected = 5 * elapsed  # one a second each
        print(
            f"fairness: healthy probes ran {healthy_runs:.0f} of {expected:.0f} ticks in {elapsed:.1f}s beside 200 hung ones"
        )
        assert healthy_runs >= 0.95 * expected - 5, (healthy_runs, expected)
        # the hung probes' ticks that could not run are counted, with their cause
        assert metric_value(agent, 'probe_agent_skipped_runs_total{cause="target"}') > 0
        hung_view = [p for p in agent.health()[1]["probes"] if p["name"].startswith("hung-")]
        assert {p["health"] for p in hung_view} <= {"failing", "pending"}
        assert agent.get("/health/live")[0] == 200
    finally:
        agent.stop()


def test_ready_is_503_until_critical_probes_have_run(tmp_path: Path, blackhole: BlackHole, shop: str) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(f"""
probes:
  - {{name: gate, type: tcp, host: 127.0.0.1, port: {blackhole.port}, expect: hello, critical: true, interval: 30s, timeout: 3s}}
  - {{name: web, type: http, url: "{shop}/health/liveness", interval: 1s, timeout: 500ms}}
""")
    agent = AgentProcess(config).start()
    try:
        code, body = agent.get("/health/ready")
        assert code == 503 and json.loads(body)["status"] in ("starting", "pending")
        agent.wait_for(
            lambda: json.loads(agent.get("/health/ready")[1]).get("pending") == ["gate"], what="gate pending"
        )
        assert agent.get("/health/ready")[0] == 503
        assert agent.health()[1]["status"] == "pending"
        # once it has run (and failed) the reason is the failure, not pending
        agent.wait_for(
            lambda: json.loads(agent.get("/health/ready")[1]).get("failing") == ["gate"],
            timeout=15,
            what="gate failing",
        )
    finally:
        agent.stop()
