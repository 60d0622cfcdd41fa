"""Datastore probes against the shared servers, and the values they measure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomysql
import asyncpg

from probe_agent.core.errors import Reason
from probe_agent.core.results import Status
from tests.conftest import ProbeOnce
from tests.helpers.servers import PrivateMariaDB, PrivatePostgres
from tests.integration.conftest import need_shared


async def test_shared_postgres_select_1(probe_once: ProbeOnce) -> None:
    port = need_shared("postgres")
    result = await probe_once(
        {
            "type": "postgres",
            "dsn": f"postgresql://postgres@127.0.0.1:{port}/test",
            "measure": ["recovery", "replication_lag"],
        }
    )
    assert result.status is Status.OK, result.message
    assert result.values == {"in_recovery": 0.0, "replication_lag_seconds": 0.0}
    assert result.details["server_version"].split(".")[0].isdigit()


async def test_shared_mysql_select_1(probe_once: ProbeOnce) -> None:
    port = need_shared("mysql")
    result = await probe_once(
        {"type": "mysql", "port": port, "user": "root", "database": "test", "measure": ["replication_lag"]}
    )
    assert result.status is Status.OK, result.message
    assert result.values == {"replica": 0.0}  # not a replica: no lag value at all
    assert "MariaDB" in result.details["server_version"]


async def test_shared_redis_info_values(probe_once: ProbeOnce) -> None:
    port = need_shared("redis")
    result = await probe_once({"type": "redis", "port": port, "measure": ["clients", "memory", "replication"]})
    assert result.status is Status.OK, result.message
    assert result.values["connected_clients"] >= 1 and result.values["used_memory_bytes"] > 100_000
    assert result.values["replica"] == 0.0 and result.details["role"] == "master"


async def test_missing_database_is_named(probe_once: ProbeOnce) -> None:
    pg = await probe_once({"type": "postgres", "port": need_shared("postgres"), "database": "no_such_db"})
    assert (pg.reason, pg.message) == (
        Reason.CONNECT,
        'database does not exist (SQLSTATE 3D000): database "no_such_db" does not exist',
    )
    my = await probe_once({"type": "mysql", "port": need_shared("mysql"), "database": "no_such_db"})
    assert (my.reason, my.message) == (
        Reason.CONNECT,
        "database does not exist (error 1049): Unknown database 'no_such_db'",
    )


async def test_query_error_carries_server_code_not_query(probe_once: ProbeOnce) -> None:
    pg = await probe_once(
        {
            "type": "postgres",
            "port": need_shared("postgres"),
            "database": "test",
            "query": "SELECT * FROM table_that_is_not_there",
        }
    )
    assert pg.reason is Reason.PROTOCOL and pg.message.startswith("query failed (SQLSTATE 42P01)")
    my = await probe_once(
        {
            "type": "mysql",
            "port": need_shared("mysql"),
            "database": "test",
            "query": "SELECT * FROM table_that_is_not_there",
        }
    )
    assert my.reason is Reason.PROTOCOL and my.message.startswith("query failed (error 1146)")


async def test_postgres_connections_cross_warning(probe_once: ProbeOnce, private_postgres: PrivatePostgres) -> None:
    server = private_postgres
    probe = {
        "type": "postgres",
        "port": server.port,
        "user": "postgres",
        "password": server.password,
        "measure": ["connections"],
    }
    quiet = await probe_once(probe)
    assert quiet.status is Status.OK and quiet.values["max_connections"] == server.max_connections
    held = [
        await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", password=server.password)
        for _ in range(16)
    ]
    try:
        busy = await probe_once(probe)
    finally:
        await asyncio.gather(*(c.close() for c in held))
    assert busy.values["connections"] == 17  # 16 held plus the probe's own
    assert busy.values["connections_used_ratio"] == 0.85
    assert busy.status is Status.WARNING  # the default 80% warning of the runbook
    assert busy.message == "connections_used_ratio 0.85 > 0.8 (warning)"


async def test_mysql_connections_cross_warning(probe_once: ProbeOnce, private_mariadb: PrivateMariaDB) -> None:
    server = private_mariadb
    probe = {
        "type": "mysql",
        "port": server.port,
        "user": "probe",
        "password": server.password,
        "measure": ["connections"],
        "thresholds": {"connections_used_ratio": {"warning": "> 0.5", "critical": "> 0.8"}},
    }
    quiet = await probe_once(probe)
    assert quiet.status is Status.OK
    held = [
        await aiomysql.connect(host="127.0.0.1", port=server.port, user="probe", password=server.password)
        for _ in range(16)
    ]
    try:
        busy = await probe_once(probe)
    finally:
        for conn in held:
            conn.close()
    assert busy.values["connections"] >= 17
    assert busy.status is Status.CRITICAL and busy.reason is None


async def test_password_file_and_dsn(probe_once: ProbeOnce, private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    secret = tmp_path / "pgpass"
    secret.write_text(private_postgres.password + "\n")
    from_file = await probe_once(
        {"type": "postgres", "port": private_postgres.port, "user": "postgres", "password_file": str(secret)}
    )
    assert from_file.status is Status.OK, from_file.message
    dsn = await probe_once(
        {"type": "postgres", "dsn": f"postgresql://postgres:${{PGPW}}@127.0.0.1:{private_postgres.port}/postgres"},
        env={"PGPW": private_postgres.password},
    )
    assert dsn.status is Status.OK, dsn.message


async def test_postgres_tls_modes(probe_once: ProbeOnce, tmp_path: Path) -> None:
    from tests.helpers.certs import make_cert

    cert = make_cert(tmp_path, "pg", days_valid=30)
    server = PrivatePostgres(tls=(cert.cert, cert.key)).start()
    try:
        base = {
            "type": "postgres",
            "host": "localhost",
            "port": server.port,
            "user": "postgres",
            "password": server.password,
        }
        required = await probe_once({**base, "sslmode": "require"})
        assert required.status is Status.OK, required.message
        verified = await probe_once({**base, "sslmode": "verify-full", "ca_file": str(cert.cert)})
        assert verified.status is Status.OK, verified.message
        untrusted = await probe_once({**base, "sslmode": "verify-full"})
        assert untrusted.reason is Reason.TLS and "self-signed certificate" in untrusted.message, untrusted.message
    finally:
        server.cleanup()


async def test_redis_tls(probe_once: ProbeOnce, tmp_path: Path) -> None:
    from tests.helpers.certs import make_cert
    from tests.helpers.servers import PrivateRedis

    cert = make_cert(tmp_path, "redis")
    server = PrivateRedis(password=None, tls=(cert.cert, cert.key)).start()
    try:
        base = {"type": "redis", "host": "localhost", "port": server.port, "tls": True}
        trusted = await probe_once({**base, "ca_file": str(cert.cert)})
        assert trusted.status is Status.OK, trusted.message
        untrusted = await probe_once(base)
        assert (untrusted.reason, untrusted.message) == (Reason.TLS, "TLS: self-signed certificate")
        plain = await probe_once({**base, "tls": False, "timeout": "1s"})
        assert plain.status is Status.CRITICAL  # a plain client never gets PONG from a TLS port
    finally:
        server.cleanup()
