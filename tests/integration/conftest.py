"""Real servers for the datastore tests: the shared ones for plain success, private ones to break."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.netfaults import BlackHole
from tests.helpers.servers import (
    PrivateMariaDB,
    PrivateNats,
    PrivatePostgres,
    PrivateRedis,
    have,
)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


SHARED = {"postgres": 5432, "mysql": 3306, "redis": 6379, "nats": 4222}


@pytest.fixture(scope="session")
def shared() -> dict[str, int]:
    """Ports of the shared servers; a test that needs one that is down is skipped (a failure in CI)."""
    return SHARED


def need_shared(kind: str) -> int:
    port = SHARED[kind]
    if not _listening(port):
        pytest.skip(f"shared {kind} server not listening on 127.0.0.1:{port} (scripts/services.sh starts it)")
    return port


def _private(binary: str, package: str, make: Callable[[], Any]) -> Iterator[Any]:
    """Start a private server for the session; a missing binary skips (and so fails CI)."""
    if not have(binary):
        pytest.skip(f"{binary} not installed (Debian package {package})")
    try:
        server = make().start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    yield from _private("runuser", "util-linux", PrivatePostgres)


@pytest.fixture(scope="session")
def private_mariadb() -> Iterator[PrivateMariaDB]:
    yield from _private("mariadbd", "mariadb-server", PrivateMariaDB)


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    yield from _private("redis-server", "redis-server", PrivateRedis)


@pytest.fixture(scope="session")
def private_nats() -> Iterator[PrivateNats]:
    yield from _private("nats-server", "nats-server", PrivateNats)


@pytest.fixture(scope="session")
def private_nats_auth() -> Iterator[PrivateNats]:
    yield from _private("nats-server", "nats-server", lambda: PrivateNats(user="probe", password="nats-Priv4te-pw"))


@pytest.fixture
def blackhole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture(scope="session")
def core_install() -> Iterator[Path]:
    """`pip install probe-agent` (the core, no extra) from this checkout as a wheel into a fresh
    venv that any user can run: the system's Python, a world-readable folder outside any home
    (the install docs/install.md describes). Yields the venv's bin folder."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    folder = Path(tempfile.mkdtemp(prefix="probe-agent-core-"))
    folder.chmod(0o755)
    venv = folder / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-c", "constraints.txt", "."],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    yield venv / "bin"
    shutil.rmtree(folder, ignore_errors=True)
