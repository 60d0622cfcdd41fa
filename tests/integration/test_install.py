"""The install a user makes: `pip install probe-agent` (the core, no extra) into a fresh venv
from this checkout, as a wheel, not the editable checkout the other tests use. It runs the core
types and says which extra a missing type needs; the client libraries of single types are not
pulled in."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
NOT_IN_THE_CORE = ("asyncpg", "aiomysql", "redis", "nats-py", "neo4j", "aiormq", "grpcio", "kubernetes_asyncio")


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-c", "constraints.txt", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin"


def test_the_core_install_has_no_single_types_library(core: Path) -> None:
    listed = subprocess.run(
        [str(core / "pip"), "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.splitlines()}
    assert "probe-agent" in names
    assert not names & {n.lower().replace("_", "-") for n in NOT_IN_THE_CORE}, names


def test_the_core_install_checks_and_says_what_a_missing_type_needs(core: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        checked = subprocess.run(
            [str(core / "probe-agent"), "check", "--format", "nagios", "tcp", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert checked.returncode == 0 and checked.stdout.startswith("PROBE-AGENT OK"), checked
    missing = subprocess.run(
        [str(core / "probe-agent"), "check", "--format", "nagios", "postgres", "127.0.0.1:5432"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 3, missing
    assert "pip install 'probe-agent[postgres]'" in missing.stdout.splitlines()[0], missing
