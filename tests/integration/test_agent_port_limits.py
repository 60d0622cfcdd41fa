"""Nobody on the pod network can blind the agent through its own port: with the 1,024 open files
of a common container limit, 2,000 idle connections and slow-header clients neither make a probe
fail nor keep a scraper from its answers."""

from __future__ import annotations

import re
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.agent import AgentProcess

PROBES = "probes:\n" + "".join(
    f"  - {{name: redis-port-{i}, type: tcp, host: 127.0.0.1, port: 6379, interval: 1s, timeout: 500ms}}\n"
    for i in range(30)
)


def _connect_many(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect_ex(("127.0.0.1", port))
        except OSError:
            sock.close()
            break
        sockets.append(sock)
    return sockets


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.fixture
def many_fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_and_slow_clients_cannot_starve_probes_or_scrapes(tmp_path: Path, many_fds: None) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(PROBES)
    agent = AgentProcess(
        config,
        open_files=1024,
        args=["--no-watch-config", "--web.max-connections", "200", "--web.read-header-timeout", "2s"],
    ).start()
    idle: list[socket.socket] = []
    try:
        agent.wait_for(lambda: "probe_success" in agent.get("/metrics")[1], what="first results")
        idle = _connect_many(agent.port, 2000)
        slow = _connect_many(agent.port, 0)
        time.sleep(0.5)
        for sock in idle[:20]:  # slowloris: a header byte now and then, never the end of them
            try:
                sock.send(b"GET /metrics HTTP/1.1\r\nX: ")
            except OSError:
                pass
        answered = 0
        for _ in range(16):
            try:
                code, _body = agent.get("/metrics", timeout=2)
                answered += code == 200
            except OSError:
                pass
            for sock in idle[:20]:
                try:
                    sock.send(b"a")
                except OSError:
                    pass
            time.sleep(0.5)
        assert answered == 16, f"{answered} of 16 scrapes answered"
        assert all(_closed_by_peer(sock) for sock in idle[:20]), "a slow-header client was still connected after 8 s"
        metrics = agent.get("/metrics")[1]
        failed = [
            line
            for line in metrics.splitlines()
            if line.startswith("probe_results_total{")
            and 'status="ok"' not in line
            and not line.endswith(" 0")
            and not line.endswith(" 0.0")
        ]
        assert not failed, failed[:5]
        assert re.search(r'probe_results_total\{probe="redis-port-0",status="ok",type="tcp"\} ([1-9]\d*)', metrics), (
            metrics[:2000]
        )
        assert '"open files limit"' in agent.logs()
    finally:
        for sock in idle + slow:
            sock.close()
        agent.stop()
