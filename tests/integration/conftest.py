"""Real servers for the datastore tests: the shared ones for plain success, private ones to break."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

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


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    if not have("runuser"):
        pytest.skip("runuser not available")
    try:
        server = PrivatePostgres().start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def private_mariadb() -> Iterator[PrivateMariaDB]:
    if not have("mariadbd"):
        pytest.skip("mariadbd not installed (Debian package mariadb-server)")
    server = PrivateMariaDB().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    if not have("redis-server"):
        pytest.skip("redis-server not installed")
    server = PrivateRedis().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def private_nats() -> Iterator[PrivateNats]:
    if not have("nats-server"):
        pytest.skip("nats-server not installed")
    server = PrivateNats().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def private_nats_auth() -> Iterator[PrivateNats]:
    if not have("nats-server"):
        pytest.skip("nats-server not installed")
    server = PrivateNats(user="probe", password="nats-Priv4te-pw").start()
    yield server
    server.cleanup()
