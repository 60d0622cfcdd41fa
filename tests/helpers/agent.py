"""Run the real `probe-agent run` in a subprocess and talk to it over loopback."""

from __future__ import annotations

import base64
import html
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers.netfaults import free_port

# Every agent started, so the session can stop the ones a failing test left behind: a leftover
# agent keeps probing (and using CPU) after pytest exits, and a later run's timings pay for it.
STARTED: list[AgentProcess] = []


def stop_leftovers() -> list[str]:
    """Kill the agents still running (at the end of the session); their config paths."""
    left = []
    for agent in STARTED:
        if agent.proc is not None and agent.proc.poll() is None:
            left.append(str(agent.config))
            agent.proc.kill()
            agent.proc.wait(10)
            agent._log.close()
    STARTED.clear()
    return left


class AgentProcess:
    def __init__(
        self,
        config: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        open_files: int | None = None,
    ):
        """tls: the client context to reach an agent serving HTTPS; auth: (user, password) to send."""
        self.tls = tls
        self.auth = auth
        self.config = config
        self.port = free_port()
        self.log_path = config.with_suffix(".log")
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.open_files = open_files  # RLIMIT_NOFILE, soft and hard, as a container may set it

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _headers(self) -> dict[str, str]:
        if self.auth is None:
            return {}
        token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def start(self, wait_ready: bool = True) -> AgentProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "probe_agent",
                "run",
                "-c",
                str(self.config),
                "--listen",
                f"127.0.0.1:{self.port}",
                *self.args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            preexec_fn=self._limit_open_files if self.open_files else None,
        )
        STARTED.append(self)
        if wait_ready:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {self.proc.returncode}: {self.logs()}")
                try:
                    self.get("/health/live")
                    return self
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError(f"agent did not start: {self.logs()}")
        return self

    def _limit_open_files(self) -> None:
        import resource

        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.tls) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, timeout: float = 30) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, method="POST", data=b"", headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.tls) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> tuple[int, dict[str, Any]]:
        code, body = self.get("/health")
        return code, json.loads(body)

    def wait_for(self, predicate: Any, timeout: float = 15, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\nlogs:\n{self.logs()[-3000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.logs().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                pass
        return entries


def all_outputs(config: Path, env: dict[str, str] | None = None, settle: Any = None) -> dict[str, str]:
    """Everything a secret could leak into: /metrics, /health and logs of a running agent
    (debug level), and `check` output as table and JSON. `settle(agent)` says when to read."""
    agent = AgentProcess(config, env=env, args=["--log-level", "debug"]).start()
    try:
        agent.wait_for(
            lambda: settle(agent) if settle else all(p["status"] for p in agent.health()[1]["probes"]),
            what="results to settle",
        )
        outputs = {
            "metrics": agent.get("/metrics")[1],
            "health": agent.get("/health")[1],
            # unescaped: a secret with & or < in it must not hide as &amp; or &lt;
            "status page": html.unescape(agent.get("/status")[1]),
        }
    finally:
        agent.stop()
    outputs["logs"] = agent.logs()
    for fmt in ("table", "json"):
        out = subprocess.run(
            [sys.executable, "-m", "probe_agent", "check", "-c", str(config), "--format", fmt, "--log-level", "debug"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**agent.env, "COLUMNS": "200"},
        )
        outputs[f"check {fmt}"] = out.stdout + out.stderr
    return outputs


def assert_no_secret(outputs: dict[str, str], secrets: dict[str, str]) -> None:
    for where, text in outputs.items():
        for name, secret in secrets.items():
            assert secret not in text, f"{name} leaked into {where}"
