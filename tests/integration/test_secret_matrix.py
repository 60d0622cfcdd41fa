"""Every secret form x every way of failing x every output: no secret ever shows.

Forms: secret-named query parameters (literal and through ${SERVICE_URL}), a token as the URL
user, a tcp `send` marked secret, synthetic variables (secret-named, and marked secret), an
invalid NATS URL carrying a token. Failures: the server echoes the request, refuses the
connection, fails TLS, or the config is invalid. Outputs: /metrics, /health, the JSON log at
debug level, `check` as table and JSON, `validate`, and the reload answer and log line.
And the opposite: an ordinary expected value under a secret-looking key is not masked.
"""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess, all_outputs, assert_no_secret
from tests.helpers.netfaults import free_port

SECRETS = {
    "query api_key": "Qry-ApiKey-5ecret",
    "token as URL user": "UrlUserToken0123456789",
    "query sig via env": "Sig-From-Env-5ecret",
    "tcp send": "Tcp-Auth-5ecret",
    "synthetic pw": "SynthVar-2a7c-pw",
    "synthetic marked": "Marked-Var-5ecret",
    "query token, refused": "Refused-Token-5ecret",
    "query access_token, tls error": "Tls-Access-5ecret",
}
NATS_TOKEN = "NatsUrlToken0123456789"


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it was sent: the worst case for a secret in a request."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            sent = json.loads(body) if body else {}
        except ValueError:
            sent = {"raw": body.decode(errors="replace")}
        payload = json.dumps({"path": self.path, "headers": dict(self.headers), **sent}).encode()
        self.send_response(401 if "api_key" in self.path or "sig" in self.path else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _echo

    def log_message(self, *_args: object) -> None:
        pass


class TcpEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(4096)
        self.request.sendall(b"-ERR you said: " + data)


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[int, int]]:
    http = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), TcpEcho)
    for server in (http, tcp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield http.server_address[1], tcp.server_address[1]
    for server in (http, tcp):
        server.shutdown()
        server.server_close()


def matrix_config(tmp_path: Path, http_port: int, tcp_port: int) -> Path:
    refused = free_port()
    base = f"http://127.0.0.1:{http_port}"
    path = tmp_path / "probes.yaml"
    path.write_text(f"""
defaults: {{interval: 1s, timeout: 900ms}}
probes:
  - {{name: query-key, type: http, url: "{base}/echo?api_key={SECRETS["query api_key"]}&x=1"}}
  - {{name: url-user, type: http, url: "http://{SECRETS["token as URL user"]}@127.0.0.1:{http_port}/echo",
      expect_json: {{ok: true}}}}
  - {{name: env-url, type: http, url: "${{SERVICE_URL}}"}}
  - {{name: tcp-auth, type: tcp, host: 127.0.0.1, port: {tcp_port}, send: "AUTH {SECRETS["tcp send"]}\\r\\n",
      send_secret: true, expect: "+OK"}}
  - name: flow
    type: synthetic
    base_url: {base}
    variables: {{pw: "{SECRETS["synthetic pw"]}", greeting: "{SECRETS["synthetic marked"]}"}}
    secret_variables: [greeting]
    steps:
      - {{name: echo-pw, method: POST, path: /echo, json: {{pw: "{{{{pw}}}}"}}, expect_json: {{pw: nope}}}}
  - name: flow-marked
    type: synthetic
    base_url: {base}
    variables: {{greeting: "{SECRETS["synthetic marked"]}"}}
    secret_variables: [greeting]
    steps:
      - {{name: echo-greeting, method: POST, path: /echo, json: {{greeting: "{{{{greeting}}}}"}}, expect_json: {{greeting: nope}}}}
  - {{name: refused, type: http, url: "http://127.0.0.1:{refused}/?token={SECRETS["query token, refused"]}"}}
  - {{name: tls-error, type: http, url: "https://127.0.0.1:{http_port}/?access_token={SECRETS["query access_token, tls error"]}"}}
  - {{name: expects-nope, type: http, url: "{base}/echo", expect_json: {{token: nope}}}}
  - name: ordinary
    type: synthetic
    base_url: {base}
    steps:
      - {{name: wants-nope, method: POST, path: /echo, json: {{word: hello}}, expect_json: {{word: nope}}}}
""")
    return path


def test_no_secret_form_leaks_through_any_failure_or_output(tmp_path: Path, echo: tuple[int, int]) -> None:
    http_port, tcp_port = echo
    config = matrix_config(tmp_path, http_port, tcp_port)
    env = {"SERVICE_URL": f"http://127.0.0.1:{http_port}/echo?sig={SECRETS['query sig via env']}"}
    outputs = all_outputs(config, env=env)
    # the failures did happen, and say what they are
    health = json.loads(outputs["health"])
    by_name = {p["name"]: p for p in health["probes"]}
    assert by_name["tcp-auth"]["reason"] == "assertion" and "***" in by_name["tcp-auth"]["message"]
    assert by_name["flow"]["reason"] == "assertion" and 'pw is "***"' in by_name["flow"]["message"]
    assert by_name["refused"]["reason"] == "connect" and by_name["tls-error"]["reason"] == "tls"
    assert "api_key=***" in by_name["query-key"]["target"] and "sig=***" in by_name["env-url"]["target"]
    assert by_name["url-user"]["target"].startswith("http://***@")
    # the opposite bug: an expected value is no secret, in its own probe or another
    assert 'expected "nope"' in by_name["ordinary"]["message"], by_name["ordinary"]["message"]
    assert_no_secret(outputs, SECRETS)


def test_invalid_config_problems_never_quote_a_secret(tmp_path: Path, echo: tuple[int, int]) -> None:
    http_port, tcp_port = echo
    config = matrix_config(tmp_path, http_port, tcp_port)
    env = {"SERVICE_URL": f"http://127.0.0.1:{http_port}/echo?sig={SECRETS['query sig via env']}"}
    agent = AgentProcess(config, env=env, args=["--web.enable-lifecycle", "--log-level", "debug"]).start()
    try:
        bad = config.read_text() + (
            f'  - {{name: bad-nats, type: nats, monitor_url: "http://127.0.0.1:1",'
            f' servers: ["natz://{NATS_TOKEN}@127.0.0.1:4222"]}}\n'
            f'  - {{name: bad-url, type: http, url: "ftp://u:{SECRETS["query api_key"]}@127.0.0.1/"}}\n'
        )
        config.write_text(bad)
        code, answer = agent.post("/-/reload")
        assert code == 400 and "bad-nats" in answer and "bad-url" in answer
        validate = subprocess.run(
            [sys.executable, "-m", "probe_agent", "validate", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            env=agent.env,
        )
        check = subprocess.run(
            [sys.executable, "-m", "probe_agent", "check", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            env=agent.env,
        )
        assert validate.returncode == 1 and check.returncode == 3 and "bad-nats" in validate.stderr
    finally:
        agent.stop()
    outputs = {
        "reload answer": answer,
        "validate": validate.stderr + validate.stdout,
        "check": check.stderr + check.stdout,
        "logs": agent.logs(),
    }
    assert_no_secret(outputs, {**SECRETS, "nats token": NATS_TOKEN})
