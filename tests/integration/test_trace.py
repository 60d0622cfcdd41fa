"""`check -v` and the daemon's /debug/probe: a trace of one run, redacted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.agent import AgentProcess
from tests.helpers.certs import make_cert
from tests.helpers.netfaults import free_port
from tests.helpers.processes import demo_shop, http_server_process

TOKEN = "Tr4ce-s3cret-T0ken"


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe_agent", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "160", "TRACE_TOKEN": TOKEN},
    )


def test_check_verbose_shows_what_the_server_answered(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, days_valid=20)
    expired = make_cert(tmp_path, "expired", expired=True)
    stale_port = free_port()
    tls_port = free_port()
    with (
        demo_shop(faults="readiness=error") as shop,
        http_server_process(
            [sys.executable, "-m", "tests.helpers.target_server", str(tls_port), str(cert.cert), str(cert.key)],
            tls_port,
        ),
        http_server_process(
            [sys.executable, "-m", "tests.helpers.target_server", str(stale_port), str(expired.cert), str(expired.key)],
            stale_port,
        ),
    ):
        config = tmp_path / "probes.yaml"
        config.write_text(f"""
probes:
  - {{name: ready, type: http, url: "{shop}/health/readiness", headers: {{Authorization: "Bearer ${{TRACE_TOKEN}}"}}}}
  - {{name: tls, type: http, url: "https://127.0.0.1:{tls_port}/", ca_file: "{cert.cert}"}}
  - {{name: stale, type: http, url: "https://127.0.0.1:{stale_port}/", ca_file: "{expired.cert}"}}
  - {{name: banner, type: tcp, host: 127.0.0.1, port: {shop.rsplit(":", 1)[1]}, send: "HELLO\\r\\n\\r\\n", expect: "nope", max_read_bytes: 64}}
""")
        out = check("-c", str(config), "-v")
    text = out.stdout
    ready = text.split("--- ready (http, CRITICAL) ---")[1].split("--- ")[0]
    assert "> GET " + shop + "/health/readiness" in ready and "> Authorization: ***" in ready
    assert "< HTTP/1.1 500 Internal Server Error" in ready
    assert '<   {"error": "internal error (injected fault)"}' in ready  # what the server said
    assert "phases: resolve" in ready and "failed: assertion: status 500, expected 200-399" in ready
    tls = text.split("--- tls (http, OK) ---")[1].split("--- ")[0]
    assert "tls: TLSv1.3, cipher " in tls
    assert (
        "tls: certificate subject CN=localhost, issuer CN=localhost, names localhost" in tls and "(20 days left)" in tls
    )
    stale = text.split("--- stale (http, CRITICAL) ---")[1].split("--- ")[0]
    # a certificate that failed verification: what it was, and when it expired
    assert "tls: refused certificate subject CN=localhost" in stale and "days ago)" in stale, stale
    assert f"expires {expired.not_after:%Y-%m-%d}" in stale
    banner = text.split("--- banner (tcp, CRITICAL) ---")[1]
    assert "> 'HELLO\\r\\n\\r\\n'" in banner and "< b'HTTP/1.0 400 Bad Request" in banner, (
        banner
    )  # bytes sent and received
    assert TOKEN not in text + out.stderr


def test_debug_endpoint_runs_one_configured_probe(tmp_path: Path) -> None:
    with demo_shop() as shop:
        config = tmp_path / "probes.yaml"
        config.write_text(
            f"probes:\n  - {{name: live, type: http, url: '{shop}/health/liveness', interval: 1m, timeout: 5s,"
            f" headers: {{X-Api-Key: '${{TRACE_TOKEN}}'}}}}\n"
        )
        agent = AgentProcess(config, env={"TRACE_TOKEN": TOKEN}).start()
        try:
            code, body = agent.get("/debug/probe?name=live")
            missing = agent.get("/debug/probe?name=lvie")
            arbitrary = agent.get(f"/debug/probe?name=live&url={shop}/admin/faults")
        finally:
            agent.stop()
        brief = AgentProcess(config, env={"TRACE_TOKEN": TOKEN}, args=["--web.health-detail=status"]).start()
        try:
            hidden = brief.get("/debug/probe?name=live")
        finally:
            brief.stop()
    text = body
    assert code == 200 and "live" in text and "< HTTP/1.1 200 OK" in text and "> X-Api-Key: ***" in text, text
    assert TOKEN not in text
    assert missing[0] == 404 and "did you mean 'live'?" in missing[1]
    # only the configured probe runs: a target in the query string is ignored
    assert arbitrary[0] == 200 and "/health/liveness" in arbitrary[1] and "/admin/faults" not in arbitrary[1]
    assert hidden[0] == 403
