"""Start real servers as subprocesses on free loopback ports, and wait on them properly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers.netfaults import free_port


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0, up: bool = True) -> None:
    """Wait until the port accepts (up) or refuses (not up) connections. PID 1 reaps late: trust the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} still {'closed' if up else 'open'} after {timeout}s")


@contextmanager
def http_server_process(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run an HTTP server as its own process until the block ends; yields its base URL once it listens."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def demo_shop(faults: str = "") -> Iterator[str]:
    """The real demo shop in its own process; yields its base URL."""
    port = free_port()
    env = {**os.environ, "SHOP_HOST": "127.0.0.1", "SHOP_PORT": str(port), "DEMO_FAULTS": faults}
    with http_server_process([sys.executable, "-m", "probe_agent.demo.shop"], port, env) as url:
        yield url


def http_json(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return int(resp.status)
