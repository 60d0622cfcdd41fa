"""The Grafana dashboards in deploy/grafana: every panel's query, with the dashboard variables
filled in as Grafana would, parses and returns data from a real Prometheus that scrapes a real
agent (http, TLS, a 500, a dead-letter queue on the shared RabbitMQ) and evaluates the rules
`probe-agent rules` wrote for its SLO."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import aiormq
import pytest

from tests.helpers.agent import AgentProcess
from tests.helpers.certs import make_cert
from tests.helpers.netfaults import free_port
from tests.helpers.processes import http_server_process
from tests.helpers.prometheus import prometheus

DASHBOARDS = sorted((Path(__file__).parents[2] / "deploy" / "grafana").glob("*.json"))
pytestmark = pytest.mark.service("prometheus")
# what Grafana puts in for its variables: every probe and SLO, a rate window of a minute
VARIABLES = {"$probe": ".*", "$slo": ".*", "$__rate_interval": "1m", "${datasource}": "prometheus"}


def panel_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for name, value in VARIABLES.items():
                    expr = expr.replace(name, value)
                found.append((path.stem, panel["title"], expr))
    return found


async def make_queue(name: str) -> None:
    connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    await channel.queue_declare(name, auto_delete=False)
    await channel.basic_publish(b"dead letter", routing_key=name)
    await connection.close()


async def drop_queue(name: str) -> None:
    connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    await channel.queue_delete(name)
    await connection.close()


def test_dashboards_are_provisionable_json() -> None:
    assert len(DASHBOARDS) == 2
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"] and "id" not in board  # provisioning assigns ids
        assert [p["id"] for p in board["panels"]] == sorted({p["id"] for p in board["panels"]})
        assert all(t["datasource"]["uid"] == "${datasource}" for p in board["panels"] for t in p["targets"])


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian package) not installed")
def test_every_panel_query_returns_data(tmp_path: Path) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 5672)) != 0:
            pytest.skip("RabbitMQ not listening on 127.0.0.1:5672 (scripts/services.sh starts it)")
    queue = f"probe-agent-dashboard-{uuid.uuid4().hex[:8]}.dlq"
    asyncio.run(make_queue(queue))
    cert = make_cert(tmp_path)
    with ExitStack() as stack:
        stack.callback(lambda: asyncio.run(drop_queue(queue)))
        plain_port, tls_port = free_port(), free_port()
        plain = stack.enter_context(
            http_server_process([sys.executable, "-m", "tests.helpers.target_server", str(plain_port)], plain_port)
        )
        stack.enter_context(
            http_server_process(
                [sys.executable, "-m", "tests.helpers.target_server", str(tls_port), str(cert.cert), str(cert.key)],
                tls_port,
            )
        )
        config = tmp_path / "probes.yaml"
        config.write_text(f"""
defaults: {{interval: 1s, timeout: 500ms}}
probes:
  - {{name: web, type: http, url: "{plain}/", tags: [shop]}}
  - {{name: web-500, type: http, url: "{plain}/500", tags: [shop]}}
  - {{name: web-tls, type: http, url: "https://127.0.0.1:{tls_port}/", ca_file: "{cert.cert}"}}
  - {{name: dlq, type: amqp, password: guest, queue: "{queue}"}}
slos:
  - {{name: shop, tags: [shop], availability: 99.9, latency: {{threshold: 250ms, target: 99}}}}
""")
        from probe_agent.cli import main

        rules = tmp_path / "slo-rules.yml"
        assert main(["rules", "-c", str(config), "-o", str(rules)]) == 0
        agent = AgentProcess(config).start()
        stack.callback(agent.stop)
        scrape = f"  - job_name: probe-agent\n    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n"
        prom = stack.enter_context(prometheus(tmp_path, scrape, rule_files=[rules]))
        empty = []
        for board, title, expr in panel_queries():
            try:
                prom.query_until(expr, timeout=40)
            except AssertionError:
                empty.append(f"{board}: {title}: {expr}")
        assert not empty, "panels without data:\n" + "\n".join(empty)
