"""docker-compose.test.yml's probe set goes all green once its environment is up, run here
without Docker: each compose service is stood in for by the same server on loopback (the
shared PostgreSQL, MariaDB and Redis, a private nats-server with JetStream and monitoring
as compose starts it, the demo shop, and the Bolt test double for Neo4j), the DLQ stream is
created as compose's nats-setup does, and the compose gate's own command, `probe-agent wait`,
must return 0. Without that stream the gate must fail, naming it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import pytest
import yaml

from tests.helpers.bolt import BoltServer
from tests.helpers.processes import demo_shop
from tests.helpers.servers import PrivateNats

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())
NEO4J_PASSWORD = COMPOSE["services"]["agent"]["environment"]["NEO4J_PASSWORD"]


def relocate(probes_file: dict[str, Any], where: dict[tuple[str, int], int]) -> dict[str, Any]:
    """The compose probe set with each (service, port) it names moved to 127.0.0.1:PORT."""

    def move_url(url: str) -> str:
        parts = urlsplit(url)
        port = where[(parts.hostname or "", parts.port or 0)]
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))

    moved = []
    for probe in probes_file["probes"]:
        probe = dict(probe)
        for field in ("url", "uri", "base_url", "monitor_url"):
            if field in probe:
                probe[field] = move_url(probe[field])
        if "servers" in probe:
            probe["servers"] = [move_url(s) for s in probe["servers"]]
        if "host" in probe:
            probe["host"], probe["port"] = "127.0.0.1", where[(probe["host"], probe["port"])]
        moved.append(probe)
    return {**probes_file, "probes": moved}


async def gate(config: Path) -> tuple[int, str]:
    """The compose gate's command (`wait -c FILE --timeout ...`), shortened to this test's pace."""
    command = COMPOSE["services"]["gate"]["command"]
    assert command[:2] == ["wait", "-c"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "probe_agent",
        "wait",
        "-c",
        str(config),
        "--timeout",
        "40s",
        "--pause",
        "300ms",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "NEO4J_PASSWORD": NEO4J_PASSWORD, "COLUMNS": "200"},
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


@pytest.fixture
def nats_like_compose() -> Any:
    server = PrivateNats().start()  # -js and a monitoring port, as compose's `-js -m 8222`
    yield server
    server.cleanup()


async def test_compose_probe_set_is_green_once_the_environment_is_up(
    tmp_path: Path,
    shared: dict[str, int],
    nats_like_compose: PrivateNats,
) -> None:
    nats_server = nats_like_compose
    source = yaml.safe_load((ROOT / "deploy" / "compose-probes.yaml").read_text())
    async with BoltServer(password=NEO4J_PASSWORD) as bolt:
        with demo_shop() as shop:
            where = {
                ("shop", 8080): urlsplit(shop).port or 0,
                ("postgres", 5432): shared["postgres"],
                ("mysql", 3306): shared["mysql"],
                ("redis", 6379): shared["redis"],
                ("neo4j", 7687): bolt.port,
                ("nats", 4222): nats_server.port,
                ("nats", 8222): nats_server.monitor_port,
            }
            config = tmp_path / "probes.yaml"
            config.write_text(yaml.safe_dump(relocate(source, where)))
            # before nats-setup: the gate gives up, naming the missing stream (a short timeout)
            before = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "probe_agent",
                "wait",
                "-c",
                str(config),
                "--probe",
                "nats-dlq",
                "--timeout",
                "2s",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={"PATH": "/usr/bin:/bin"},
            )
            said, _ = await asyncio.wait_for(before.communicate(), 30)
            assert before.returncode == 2 and "stream 'DLQ' not found" in said.decode(), said.decode()
            # what compose's nats-setup runs: nats stream add DLQ --subjects 'dlq.>' --storage file
            setup_command = " ".join(COMPOSE["services"]["nats-setup"]["command"])
            assert "stream add DLQ --subjects 'dlq.>' --storage file" in setup_command
            client = await nats.connect(nats_server.url)
            await client.jetstream().add_stream(name="DLQ", subjects=["dlq.>"], storage="file")
            await client.close()
            code, out = await gate(config)
    assert code == 0, out
    ready = [line for line in out.splitlines() if line.rstrip().endswith(": ready")]
    assert len(ready) == len(source["probes"]), out
