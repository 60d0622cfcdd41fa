"""An out-of-tree probe type, from its own installed distribution (tests/fixtures/acme-probes,
installed by scripts/bootstrap.sh --test through the `probe_agent.probe_types` entry point), is
validated, run by `check` and the daemon, exported on /metrics and listed by `probe-agent types`
like a built-in; every registry-wide test (test_probe_types, test_hostile_targets) covers it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from probe_agent.probes import REGISTRY
from tests.helpers.agent import AgentProcess
from tests.helpers.netfaults import free_port
from tests.helpers.processes import wait_port

EXTERNAL = "acme_ping"


@contextmanager
def line_server(answer: bytes) -> Iterator[int]:
    """A real TCP server on loopback that answers every line with `answer`."""
    port = free_port()
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                writer.write(answer)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        wait_port(port)
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.close()


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe_agent", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_fixture_distribution_is_installed_and_registered() -> None:
    # not a skip: a machine without it has not run scripts/bootstrap.sh --test
    assert EXTERNAL in REGISTRY, "acme-probes is not installed: run scripts/bootstrap.sh --test"
    assert REGISTRY.origin(EXTERNAL) == "acme-probes 1.0.0"
    assert not REGISTRY.builtin(EXTERNAL)
    assert REGISTRY[EXTERNAL].__module__ == "acme_probes.ping"


def test_check_runs_the_external_type_by_target_and_from_a_file(tmp_path: Path) -> None:
    with line_server(b"PONG\r\n") as port:
        ok = cli("check", EXTERNAL, f"127.0.0.1:{port}", "--format", "json")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        probe = json.loads(ok.stdout)["probes"][0]
        assert probe["status"] == "ok" and probe["values"] == {"answer_bytes": 6.0}
        assert probe["target"] == f"acme://127.0.0.1:{port}"
    with line_server(b"BUSY\r\n") as port:
        config = tmp_path / "probes.yaml"
        config.write_text(f"probes:\n  - {{name: billing, type: {EXTERNAL}, host: 127.0.0.1, port: {port}}}\n")
        bad = cli("check", "-c", str(config), "--format", "nagios")
        assert bad.returncode == 2, bad.stdout + bad.stderr
        assert "expected PONG" in bad.stdout


def test_the_external_type_is_validated_with_probe_field_and_line(tmp_path: Path) -> None:
    config = tmp_path / "probes.yaml"
    config.write_text(f"probes:\n  - name: billing\n    type: {EXTERNAL}\n    host: 127.0.0.1\n    prot: 7070\n")
    result = cli("validate", "-c", str(config))
    assert result.returncode == 1
    assert re.search(r"probes\.yaml:5:\d+: .*billing.*prot", result.stderr), result.stderr


def test_the_daemon_runs_and_exports_the_external_type(tmp_path: Path) -> None:
    with line_server(b"PONG\r\n") as port:
        config = tmp_path / "probes.yaml"
        config.write_text(
            f"probes:\n  - {{name: billing, type: {EXTERNAL}, host: 127.0.0.1, port: {port},"
            " interval: 1s, timeout: 500ms}\n"
        )
        agent = AgentProcess(config).start()
        try:
            agent.wait_for(lambda: agent.health()[1]["probes"][0]["status"] == "ok", what="the acme probe ran")
            _, text = agent.get("/metrics")
        finally:
            agent.stop()
    assert 'probe_success{probe="billing",type="acme_ping"} 1.0' in text
    assert 'probe_acme_answer_bytes{probe="billing",type="acme_ping"} 6.0' in text
    assert "probe_acme_duration_seconds" in text


def test_types_lists_the_external_type_with_its_fields() -> None:
    listed = cli("types", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    by_name = {entry["type"]: entry for entry in json.loads(listed.stdout)}
    assert set(by_name) == set(REGISTRY)
    acme = by_name[EXTERNAL]
    assert acme["origin"] == "acme-probes 1.0.0" and acme["default_port"] == 7070
    assert {f["name"]: f["required"] for f in acme["fields"]} == {"host": True, "port": False}
    assert acme["metrics"] == ["probe_acme_answer_bytes", "probe_acme_duration_seconds"]
    assert by_name["http"]["origin"] == "built-in"
