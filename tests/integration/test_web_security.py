"""Lock the doors: lifecycle off by default, TLS and basic auth from an exporter-toolkit web config,
a restricted /health, tested with real clients and a real Prometheus."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.certs import make_cert
from tests.helpers.netfaults import free_port
from tests.helpers.prometheus import prometheus

PASSWORD = "scr4pe-Pa55"


def probes(tmp_path: Path) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(
        f"probes:\n  - {{name: web, type: tcp, host: 127.0.0.1, port: {free_port()}, interval: 1s, timeout: 500ms}}\n"
    )
    return path


def web_config(tmp_path: Path, client_ca: Path | None = None, users: bool = True) -> tuple[Path, Path]:
    server = make_cert(tmp_path, "agent-server")
    lines = ["tls_server_config:", f"  cert_file: {server.cert}", f"  key_file: {server.key}"]
    if client_ca is not None:
        lines += ["  client_auth_type: RequireAndVerifyClientCert", f"  client_ca_file: {client_ca}"]
    if users:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        lines += ["basic_auth_users:", f"  prometheus: '{hashed}'"]
    path = tmp_path / "web.yml"
    path.write_text("\n".join(lines) + "\n")
    return path, server.cert


def client_tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def test_reload_endpoint_is_closed_unless_enabled_and_sighup_still_works(tmp_path: Path) -> None:
    config = probes(tmp_path)
    agent = AgentProcess(config).start()
    try:
        code, body = agent.post("/-/reload")
        assert code == 403 and "--web.enable-lifecycle" in json.loads(body)["error"]
        config.write_text(config.read_text().replace("name: web", "name: renamed"))
        agent.signal(signal.SIGHUP)
        agent.wait_for(lambda: 'probe="renamed"' in agent.get("/metrics")[1], what="SIGHUP reload")
    finally:
        agent.stop()
    agent = AgentProcess(config, args=["--web.enable-lifecycle"]).start()
    try:
        assert agent.post("/-/reload") == (200, '{"status": "reloaded"}')
    finally:
        agent.stop()


def test_tls_and_basic_auth(tmp_path: Path) -> None:
    web, ca = web_config(tmp_path)
    agent = AgentProcess(
        probes(tmp_path), args=["--web.config.file", str(web)], tls=client_tls(ca), auth=("prometheus", PASSWORD)
    ).start()
    try:
        assert agent.get("/metrics")[0] == 200 and agent.get("/health")[0] in (200, 503)
        wrong = AgentProcess(agent.config, tls=client_tls(ca), auth=("prometheus", "not-it"))
        wrong.port = agent.port
        for path in ("/metrics", "/health", "/health/ready", "/", "/status", "/-/maintenance"):
            code, _ = wrong.get(path)
            assert code == 401, path
        nobody = AgentProcess(agent.config, tls=client_tls(ca))
        nobody.port = agent.port
        assert nobody.get("/metrics")[0] == 401
        assert nobody.get("/health/live")[0] == 200  # kubelet's liveness probe needs no password
        with pytest.raises(OSError):  # noqa: PT011 - no plain HTTP on the TLS port (URLError and resets are OSErrors)
            urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/metrics", timeout=5).read()
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # a client that trusts nobody
            urllib.request.urlopen(
                f"https://127.0.0.1:{agent.port}/metrics", timeout=5, context=ssl.create_default_context()
            )
    finally:
        agent.stop()


def test_client_certificate_required(tmp_path: Path) -> None:
    client = make_cert(tmp_path, "scraper")
    web, ca = web_config(tmp_path, client_ca=client.cert, users=False)
    agent = AgentProcess(
        probes(tmp_path), args=["--web.config.file", str(web)], tls=client_tls(ca, client.cert, client.key)
    ).start()
    try:
        assert agent.get("/metrics")[0] == 200
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            urllib.request.urlopen(agent.url + "/metrics", timeout=5, context=client_tls(ca)).read()
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("problem", "text", "expected"),
    [
        (
            "missing cert",
            "tls_server_config: {cert_file: /nonexistent.crt, key_file: /nonexistent.key}",
            "tls_server_config.cert_file: cannot load /nonexistent.crt",
        ),
        ("plain password", "basic_auth_users: {prometheus: hunter2}", "basic_auth_users.prometheus: not a bcrypt hash"),
        ("unknown key", "tls_config: {}", "tls_config: Extra inputs are not permitted"),
    ],
)
def test_bad_web_config_is_refused_at_start(tmp_path: Path, problem: str, text: str, expected: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(text + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "probe_agent",
            "run",
            "-c",
            str(probes(tmp_path)),
            "--web.config.file",
            str(web),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and expected in out.stderr, out.stderr
    assert "hunter2" not in out.stderr and "Traceback" not in out.stderr


def test_health_detail_can_be_restricted_and_narrowed(tmp_path: Path) -> None:
    config = probes(tmp_path)
    config.write_text(config.read_text() + f"  - {{name: other, type: tcp, host: 127.0.0.1, port: {free_port()}}}\n")
    agent = AgentProcess(config, args=["--web.health-detail", "status"]).start()
    try:
        view = agent.wait_for(lambda: agent.health()[1]["probes"][0]["status"] and agent.health()[1]["probes"][0])
        assert set(view) == {"name", "type", "critical", "health", "status", "last_run", "distorted"}
        _code, body = agent.get("/health?probe=other")
        assert [p["name"] for p in json.loads(body)["probes"]] == ["other"]
    finally:
        agent.stop()


@pytest.mark.service("prometheus")
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian package) not installed")
def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path: Path) -> None:
    web, ca = web_config(tmp_path)
    agent = AgentProcess(
        probes(tmp_path), args=["--web.config.file", str(web)], tls=client_tls(ca), auth=("prometheus", PASSWORD)
    ).start()
    try:
        scrape = (
            "  - job_name: probe-agent\n    scheme: https\n"
            f"    tls_config: {{ca_file: '{ca}'}}\n"
            f"    basic_auth: {{username: prometheus, password: '{PASSWORD}'}}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n"
            "  - job_name: no-password\n    scheme: https\n"
            f"    tls_config: {{ca_file: '{ca}'}}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n"
        )
        with prometheus(tmp_path, scrape) as prom:
            series = prom.query_until('probe_success{job="probe-agent",probe="web"}')
            assert series[0]["value"][1] == "0"  # the probe fails (nothing listens), the scrape works
            down = prom.query_until('up{job="no-password"} == 0')
            assert down
    finally:
        agent.stop()
