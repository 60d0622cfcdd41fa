"""PostgreSQL probe (asyncpg): connect, authenticate, run a query, check its answer.

Success: the query (default `SELECT 1`) runs within the timeout and, when
`expect` is set (default 1 for the default query), the first column of the
first row equals it. Optional `measure` items add values, one query each:
connections in use against max_connections, recovery (replica) state, and
replication lag on a replica.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
from pydantic import field_validator

from probe_agent.core.errors import ErrorRule, ErrorTable, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, host_port
from probe_agent.probes.clients.datastore import ConnectionSlot, QueryConfig
from probe_agent.probes.clients.tls import client_context

MEASURES = {
    "connections": (
        "SELECT count(*)::float8, current_setting('max_connections')::float8 FROM pg_stat_activity"
        " WHERE backend_type = 'client backend'"
    ),
    "recovery": "SELECT pg_is_in_recovery()::int::float8",
    "replication_lag": (
        "SELECT CASE WHEN pg_is_in_recovery() THEN"
        " COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) ELSE 0 END::float8"
    ),
}


class PostgresConfig(QueryConfig):
    type: Literal["postgres"]
    default_port = 5432
    dsn: str | None = None  # postgresql://user:password@host:port/db?sslmode=... instead of the fields
    measure: list[Literal["connections", "recovery", "replication_lag"]] = []
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = None
    ca_file: str | None = None  # CA to verify the server against (verify-ca / verify-full)

    @field_validator("dsn")
    @classmethod
    def _parse_dsn(cls, dsn: str | None) -> str | None:
        # asyncpg would only complain at the first run; an operator wants it at validate.
        if dsn is None:
            return None
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgres", "postgresql") or not (parts.netloc or parts.query):
            raise ValueError("expected postgresql://[user[:password]@]host[:port]/database[?sslmode=...]")
        for host in parts.netloc.rpartition("@")[2].split(","):  # libpq allows host1:port1,host2:port2
            port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host.rpartition("]")[2] else ""
            if port and not (port.isdigit() and 0 < int(port) < 65536):
                raise ValueError(f"port {port} is out of range")
        return dsn

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return {"dsn": target} if "://" in target else host_port(target)

    def target(self) -> str:
        if self.dsn:
            return self.dsn
        return f"postgresql://{self.host}:{self.port}/{self.database or ''}"


# asyncpg's exceptions, with the SQLSTATE an operator can look up
ERRORS = ErrorTable(
    ErrorRule(
        (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError),
        Reason.AUTH,
        "authentication failed (SQLSTATE {exc.sqlstate}): {exc}",
    ),
    ErrorRule(
        asyncpg.InvalidCatalogNameError, Reason.CONNECT, "database does not exist (SQLSTATE {exc.sqlstate}): {exc}"
    ),
    ErrorRule(asyncpg.TooManyConnectionsError, Reason.CONNECT, "too many connections (SQLSTATE {exc.sqlstate})"),
    ErrorRule(
        asyncpg.CannotConnectNowError,
        Reason.CONNECT,
        "server not accepting connections (SQLSTATE {exc.sqlstate}): {exc}",
    ),
    # SQLSTATE class 08
    ErrorRule(asyncpg.PostgresConnectionError, Reason.CONNECT, "connection lost (SQLSTATE {exc.sqlstate}): {exc}"),
    ErrorRule(asyncpg.PostgresError, Reason.PROTOCOL, "query failed (SQLSTATE {exc.sqlstate}): {exc}"),
    ErrorRule(asyncpg.InterfaceError, Reason.PROTOCOL, "client error: {exc}"),
    # asyncpg, like libpq, looks for client certificates in ~/.postgresql/ unless sslmode is
    # disable; unlike libpq it fails when it cannot even look (a service user's unreadable HOME)
    ErrorRule(
        PermissionError,
        Reason.INTERNAL,
        "cannot read {exc.filename}: {exc.strerror} (the PostgreSQL client looks for client certificates"
        " in $HOME/.postgresql/; give the agent's user a HOME it can read, or set sslmode: disable)",
        when=lambda exc: ".postgresql" in str(getattr(exc, "filename", "")),
    ),
)


class PostgresProbe(Probe[PostgresConfig]):
    config_model = PostgresConfig
    example = """\
- name: orders-db
  type: postgres
  host: orders-db.example.internal
  user: probe
  password: ${PG_PASSWORD:-}
  database: orders
  measure: [connections, recovery, replication_lag]
  thresholds:
    replication_lag_seconds: {warning: 30, critical: 300}
"""
    errors = ERRORS
    phase_metric = "probe_postgres_duration_seconds"
    shown_values = ("connections", "max_connections", "replication_lag_seconds")
    values = {
        "connections": ValueSpec("probe_postgres_connections", "Client connections open on the server."),
        "max_connections": ValueSpec("probe_postgres_max_connections", "The server's max_connections."),
        "connections_used_ratio": ValueSpec(
            "probe_postgres_connections_used_ratio", "Client connections as a fraction of max_connections."
        ),
        "in_recovery": ValueSpec(
            "probe_postgres_in_recovery", "1 if the server is a replica (in recovery), 0 if primary."
        ),
        "replication_lag_seconds": ValueSpec(
            "probe_postgres_replication_lag_seconds", "Seconds since the last transaction replayed on a replica."
        ),
    }

    def __init__(self, config: PostgresConfig):
        super().__init__(config)
        self._ssl: ssl.SSLContext | str | None = config.sslmode
        if config.ca_file or config.sslmode in ("verify-ca", "verify-full"):
            self._ssl = client_context(ca_file=config.ca_file, check_hostname=config.sslmode == "verify-full")
        self._slot = ConnectionSlot(self._connect, self._close, lambda c: c.terminate(), config.pool)

    async def _connect(self) -> asyncpg.Connection:
        cfg = self.config
        kwargs: dict[str, Any] = {"timeout": cfg.timeout, "ssl": self._ssl}
        if cfg.dsn:
            kwargs["dsn"] = cfg.dsn
        else:
            kwargs.update(host=cfg.host, port=cfg.port, user=cfg.user or "postgres", database=cfg.database)
        if cfg.password is not None:
            kwargs["password"] = cfg.secret_password()
        return await asyncpg.connect(**kwargs)

    @staticmethod
    async def _close(conn: asyncpg.Connection) -> None:
        await conn.close(timeout=2)

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        async with self._slot.connection(obs) as conn:
            obs.details["server_version"] = conn.get_settings().server_version.split()[0]
            start = time.perf_counter()
            row = await conn.fetchrow(cfg.query)
            obs.add_phase("query", time.perf_counter() - start)
            for item in cfg.measure:
                await self._measure(conn, item, obs)
        cfg.check_expected(row is not None, row[0] if row is not None and len(row) else None)

    @staticmethod
    async def _measure(conn: asyncpg.Connection, item: str, obs: Observation) -> None:
        row = await conn.fetchrow(MEASURES[item])
        if item == "connections":
            used, limit = row[0], row[1]
            obs.values.update(connections=used, max_connections=limit, connections_used_ratio=round(used / limit, 4))
        elif item == "recovery":
            obs.values["in_recovery"] = row[0]
        else:
            obs.values["replication_lag_seconds"] = row[0]

    async def aclose(self) -> None:
        await self._slot.aclose()


PROBE = PostgresProbe
