"""Remediation hooks on the real daemon, against a real HTTP endpoint and real commands: they
run when a probe becomes failing, respect cooldown and attempts, escalate, never hold up the
probes, survive hung hooks, count every outcome, and keep secrets out of every output."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.agent import AgentProcess, assert_no_secret
from tests.helpers.netfaults import free_port
from tests.helpers.stub_http import QuietHandler, stub_http

ADMIN_TOKEN = "adm1n-T0ken-for-hooks-77"
URL_TOKEN = "url-t0ken-in-the-query-55"


@contextmanager
def admin_api(delay: float = 0.0, status: int = 200) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A real HTTP server on loopback standing in for the application's admin API; records requests."""
    received: list[dict[str, object]] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(
                {"path": self.path, "headers": dict(self.headers), "body": body.decode(), "at": time.monotonic()}
            )
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with stub_http(Handler) as url:
        yield url, received


def refused(name: str, more: str) -> str:
    """A probes-file entry for a probe of a closed port (it always fails), run every 300 ms,
    with `more` (indented YAML) added."""
    return (
        f"  - name: {name}\n    type: tcp\n    host: 127.0.0.1\n    port: {free_port()}\n"
        f"    interval: 300ms\n    timeout: 200ms\n{more}"
    )


def metric(agent: AgentProcess, pattern: str) -> float:
    found = re.findall(pattern, agent.get("/metrics")[1], re.MULTILINE)
    return float(found[0]) if found else 0.0


def outcome(agent: AgentProcess, probe: str, action: str, result: str) -> float:
    return metric(
        agent, rf'^probe_agent_remediations_total\{{action="{action}",probe="{probe}",result="{result}"\}} (\S+)$'
    )


def test_hooks_act_then_escalate_then_clear(tmp_path: Path) -> None:
    db_port = free_port()
    marks = tmp_path / "command-ran.txt"
    with admin_api() as (admin, received):
        config = tmp_path / "probes.yaml"
        config.write_text(f"""
defaults: {{interval: 300ms, timeout: 200ms}}
probes:
  - name: orders-db
    type: tcp
    host: 127.0.0.1
    port: {db_port}
    failure_threshold: 2
    remediation:
      dry_run: false
      cooldown: 600ms
      max_attempts: 2
      window: 1m
      actions:
        - name: recycle-pool
          http:
            url: "{admin}/admin/pool/recycle?token=${{URL_TOKEN}}"
            headers: {{Authorization: "Bearer ${{ADMIN_TOKEN}}"}}
            json: {{probe: "{{{{probe}}}}", status: "{{{{status}}}}", why: "{{{{reason}}}}: {{{{message}}}}"}}
        - name: note
          command: ["{sys.executable}", "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\\\n')", "{marks}", "{{{{probe}}}} {{{{status}}}}", "--token=${{ADMIN_TOKEN}}"]
""")
        agent = AgentProcess(config, env={"ADMIN_TOKEN": ADMIN_TOKEN, "URL_TOKEN": URL_TOKEN}).start()
        try:
            agent.wait_for(
                lambda: outcome(agent, "orders-db", "recycle-pool", "suppressed") >= 1, what="attempts spent"
            )
            # became failing after 2 runs, then every cooldown: 2 attempts in the window, then suppressed
            assert len(received) == 2
            # the second came a cooldown (600 ms) after the first, not at the next failing run (300 ms)
            gap = float(str(received[1]["at"])) - float(str(received[0]["at"]))
            assert gap >= 0.55, f"second attempt {gap:.2f}s after the first: the cooldown is 600ms"
            first = received[0]
            assert first["path"] == f"/admin/pool/recycle?token={URL_TOKEN}"
            headers = first["headers"]
            assert isinstance(headers, dict) and headers["Authorization"] == f"Bearer {ADMIN_TOKEN}"
            assert json.loads(str(first["body"])) == {
                "probe": "orders-db",
                "status": "critical",
                "why": "connect: connection refused",
            }
            assert marks.read_text().splitlines() == ["orders-db critical", "orders-db critical"]
            assert (
                outcome(agent, "orders-db", "recycle-pool", "ok") == 2
                and outcome(agent, "orders-db", "note", "ok") == 2
            )
            assert metric(agent, r'^probe_agent_remediation_escalated\{probe="orders-db"\} (\S+)$') == 1
            view = next(p for p in agent.health()[1]["probes"] if p["name"] == "orders-db")
            assert view["remediation"] == {"escalated": True, "attempts_in_window": 2, "last_outcome": "ok"}
            errors = [e for e in agent.log_entries() if e["level"] == "error"]
            assert len(errors) == 1 and "escalate to the owning team" in errors[0]["msg"]
            # the database comes back: the escalation clears
            with socket.create_server(("127.0.0.1", db_port)):
                agent.wait_for(
                    lambda: metric(agent, r'^probe_agent_remediation_escalated\{probe="orders-db"\} (\S+)$') == 0,
                    what="escalation cleared",
                )
            outputs = {"metrics": agent.get("/metrics")[1], "health": agent.get("/health")[1]}
        finally:
            agent.stop()
        outputs["logs"] = agent.logs()
    assert "remediation ran recycle-pool: POST" in outputs["logs"]
    assert "--token=***" in outputs["logs"]  # a secret in a command's arguments
    assert_no_secret(outputs, {"admin token": ADMIN_TOKEN, "url token": URL_TOKEN})


def test_dry_run_is_the_default_and_only_logs(tmp_path: Path) -> None:
    with admin_api() as (admin, received):
        config = tmp_path / "probes.yaml"
        config.write_text(
            "probes:\n"
            + refused(
                "cache",
                f"""    remediation:
      actions:
        - {{name: flush, http: {{url: "{admin}/flush?token=${{URL_TOKEN}}"}}}}
""",
            )
        )
        agent = AgentProcess(config, env={"URL_TOKEN": URL_TOKEN}).start()
        try:
            agent.wait_for(lambda: outcome(agent, "cache", "flush", "dry_run") >= 1, what="a dry run")
            time.sleep(0.5)
            assert received == []  # nothing was sent
            assert outcome(agent, "cache", "flush", "ok") == 0
        finally:
            agent.stop()
    lines = [e for e in agent.log_entries() if e["msg"].startswith("remediation (dry run) would run")]
    assert lines and "POST http://127.0.0.1:" in lines[0]["msg"] and URL_TOKEN not in agent.logs()


def test_hung_hooks_fail_on_their_own_time_and_never_hold_the_probes(tmp_path: Path) -> None:
    marker = f"probe-agent-hung-hook-{free_port()}"
    with admin_api(delay=30) as (admin, _received):
        config = tmp_path / "probes.yaml"
        config.write_text(
            f"""
defaults: {{interval: 300ms, timeout: 200ms}}
probes:
  - name: broken
    type: tcp
    host: 127.0.0.1
    port: {free_port()}
    remediation:
      dry_run: false
      cooldown: 100ms
      timeout: 700ms
      actions:
        - {{name: hangs, http: {{url: "{admin}/never-answers"}}}}
        - name: sleeps
          # hangs, and so does the grandchild it starts: both must go
          command: ["{sys.executable}", "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}']); time.sleep(60)"]
        - {{name: missing, command: ["/nonexistent/flush-cache"]}}
        - {{name: exits, command: ["{sys.executable}", "-c", "import sys; print('pool busy'); sys.exit(3)"]}}
  - {{name: healthy, type: tcp, host: 127.0.0.1, port: {{agent_port}}}}
""".replace("{agent_port}", "AGENT_PORT")
        )
        agent = AgentProcess(config)
        config.write_text(config.read_text().replace("AGENT_PORT", str(agent.port)))
        agent.start()
        try:
            started = time.monotonic()
            agent.wait_for(
                lambda: outcome(agent, "broken", "exits", "failed") >= 1, timeout=20, what="one whole attempt"
            )
            # each hung action was cut at 0.7 s: the whole attempt took about 1.4 s, not a minute
            assert time.monotonic() - started < 6
            for action in ("hangs", "sleeps", "missing", "exits"):
                assert outcome(agent, "broken", action, "failed") >= 1, action
            messages = [e["msg"] for e in agent.log_entries() if e["msg"].startswith("remediation failed")]
            assert any("hangs" in m and "no answer within 0.7s" in m for m in messages), messages
            assert any("sleeps" in m and "killed after 0.7s" in m for m in messages), messages
            assert any("missing" in m and "cannot start /nonexistent/flush-cache" in m for m in messages), messages
            assert any("exits" in m and "exit status 3: pool busy" in m for m in messages), messages
            # the process group died with it: no grandchild left behind
            left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
            assert left.stdout == "", f"left running: {left.stdout}"
            # meanwhile the other probe kept its schedule and the agent stayed live
            healthy = metric(agent, r'^probe_results_total\{probe="healthy",status="ok",type="tcp"\} (\S+)$')
            time.sleep(1.0)
            assert (
                metric(agent, r'^probe_results_total\{probe="healthy",status="ok",type="tcp"\} (\S+)$') >= healthy + 2
            )
            assert agent.get("/health/live")[0] == 200
        finally:
            agent.stop()


def test_remediation_config_errors_name_probe_and_field(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text("""probes:
  - name: db
    type: tcp
    host: h
    port: 1
    remediation:
      actions:
        - {name: both, http: {url: "http://a/"}, command: [x]}
        - {name: neither}
        - {name: typo, command: ["/bin/flush", "{{probe_name}}"]}
        - {name: scheme, http: {url: "ftp://a/"}}
""")
    out = subprocess.run(
        [sys.executable, "-m", "probe_agent", "validate", "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "probe 'db': remediation.actions[0]: give exactly one of http or command" in out.stderr
    assert "probe 'db': remediation.actions[1]: give exactly one of http or command" in out.stderr
    assert "unknown template {{probe_name}}" in out.stderr
    assert "probe 'db': remediation.actions[3].http.url:" in out.stderr


def test_no_remediation_inside_a_maintenance_window(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(
        "probes:\n"
        + refused("db", "    tags: [db]\n    remediation:\n      actions: [{name: restart, command: [/bin/true]}]\n")
        + refused("cache", "    remediation:\n      actions: [{name: flush, command: [/bin/true]}]\n")
        + 'maintenance:\n  - {name: upgrade, tags: [db], every: day, at: "00:00", duration: 7d}\n'
    )
    agent = AgentProcess(config).start()
    try:
        agent.wait_for(lambda: outcome(agent, "cache", "flush", "dry_run") >= 1, what="the other probe's dry run")
        agent.wait_for(
            lambda: metric(agent, r'^probe_results_total\{probe="db",status="maintenance",type="tcp"\} (\S+)$') >= 3,
            what="db to fail a few times in its window",
        )
        assert outcome(agent, "db", "restart", "dry_run") == 0  # planned work: nothing to remediate
    finally:
        agent.stop()


HOSTILE_STATUS = 'x&action=drop_all&confirm=yes#"}\r\nX-Injected: 1\r\n\r\n{"a": "'


@contextmanager
def hostile_target() -> Iterator[str]:
    """A health endpoint whose JSON status is written to rewrite whatever quotes it."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": HOSTILE_STATUS}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with stub_http(Handler) as url:
        yield f"{url}/health"


def test_a_targets_text_cannot_rewrite_a_remediation_call(tmp_path: Path) -> None:
    from urllib.parse import parse_qs, urlsplit

    with admin_api() as (admin, received), hostile_target() as target:
        config = tmp_path / "probes.yaml"
        config.write_text(f"""
probes:
  - name: evil
    type: http
    url: "{target}"
    expect_json: {{status: ok}}
    interval: 300ms
    timeout: 200ms
    remediation:
      dry_run: false
      actions:
        - name: hook
          http:
            url: "{admin}/hook?probe={{{{probe}}}}&why={{{{message}}}}"
            headers: {{X-Why: "{{{{message}}}}"}}
            body: '{{"why": "{{{{message}}}}", "probe": "{{{{probe}}}}"}}'
""")
        agent = AgentProcess(config).start()
        try:
            agent.wait_for(lambda: received, what="the hook called")
        finally:
            agent.stop()
    call = received[0]
    query = parse_qs(urlsplit(str(call["path"])).query)
    assert sorted(query) == ["probe", "why"], call["path"]
    assert query["probe"] == ["evil"] and "action=drop_all" in query["why"][0]
    headers = call["headers"]
    assert isinstance(headers, dict) and "X-Injected" not in headers
    assert "\r" not in headers["X-Why"] and "\n" not in headers["X-Why"]
    body = json.loads(str(call["body"]))
    assert sorted(body) == ["probe", "why"] and "action=drop_all" in body["why"]


def test_a_template_in_a_urls_host_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(
        "probes:\n"
        + refused(
            "p",
            "    remediation:\n      actions:\n        - name: hook\n          http: {url: 'http://{{message}}/'}\n",
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "probe_agent", "validate", "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert "url: a template may stand only after the host" in done.stderr
