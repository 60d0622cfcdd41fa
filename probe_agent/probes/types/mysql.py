"""MySQL / MariaDB probe (aiomysql): connect, authenticate, run a query, check its answer.

Success: the query (default `SELECT 1`) runs within the timeout and, when
`expect` is set (default 1 for the default query), the first column of the
first row equals it. Optional `measure` items add values: Threads_connected
against max_connections, and replica lag when the server is a replica.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Literal

import aiomysql
import pymysql

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, host_port
from probe_agent.probes.clients.datastore import ConnectionSlot, QueryConfig
from probe_agent.probes.clients.tls import client_context

# MySQL client/server error numbers an operator will search for.
AUTH_ERRORS = {1044, 1045, 1698}  # access denied
UNKNOWN_DATABASE = 1049
TOO_MANY_CONNECTIONS = {1040, 1203}
CONNECTION_ERRORS = {2002, 2003, 2005, 2006, 2013, 2055}


class MysqlConfig(QueryConfig):
    type: Literal["mysql"]
    default_port = 3306
    measure: list[Literal["connections", "replication_lag"]] = []
    tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return host_port(target)

    def target(self) -> str:
        return f"mysql://{self.host}:{self.port}/{self.database or ''}"


def translate(exc: BaseException) -> ProbeError | None:
    if not isinstance(exc, pymysql.err.MySQLError):
        return None
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if code in AUTH_ERRORS:
        return ProbeError(Reason.AUTH, f"authentication failed (error {code}): {text}")
    if code == UNKNOWN_DATABASE:
        return ProbeError(Reason.CONNECT, f"database does not exist (error {code}): {text}")
    if code in TOO_MANY_CONNECTIONS:
        return ProbeError(Reason.CONNECT, f"too many connections (error {code})")
    if code in CONNECTION_ERRORS:
        cause = exc.__cause__ or exc.__context__
        detail = "connection refused" if isinstance(cause, ConnectionRefusedError) else text
        return ProbeError(Reason.CONNECT, f"{detail} (error {code})")
    return ProbeError(Reason.PROTOCOL, f"query failed (error {code}): {text}")


class MysqlProbe(Probe[MysqlConfig]):
    config_model = MysqlConfig
    example = """\
- name: legacy-db
  type: mysql
  host: legacy-db.example.internal
  user: probe
  password: ${MYSQL_PASSWORD:-}
  measure: [connections, replication_lag]
"""
    translate = staticmethod(translate)
    phase_metric = "probe_mysql_duration_seconds"
    shown_values = ("connections", "max_connections", "replication_lag_seconds")
    values = {
        "connections": ValueSpec("probe_mysql_threads_connected", "Threads_connected: client connections open."),
        "max_connections": ValueSpec("probe_mysql_max_connections", "The server's max_connections."),
        "connections_used_ratio": ValueSpec(
            "probe_mysql_connections_used_ratio", "Threads_connected as a fraction of max_connections."
        ),
        "replica": ValueSpec("probe_mysql_replica", "1 if the server is a replica, 0 otherwise."),
        "replication_lag_seconds": ValueSpec(
            "probe_mysql_replication_lag_seconds", "Seconds_Behind_Master / Seconds_Behind_Source on a replica."
        ),
    }

    def __init__(self, config: MysqlConfig):
        super().__init__(config)
        self._ssl: ssl.SSLContext | None = None
        if config.tls:
            self._ssl = client_context(config.tls_verify, config.ca_file)
        self._slot = ConnectionSlot(self._connect, self._close, lambda c: c.close(), config.pool)

    async def _connect(self) -> aiomysql.Connection:
        cfg = self.config
        return await aiomysql.connect(
            host=cfg.host,
            port=cfg.port,
            user=cfg.user or "root",
            password=cfg.secret_password() or "",
            db=cfg.database,
            ssl=self._ssl,
            connect_timeout=cfg.timeout,
            autocommit=True,
        )

    @staticmethod
    async def _close(conn: aiomysql.Connection) -> None:
        await conn.ensure_closed()

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        async with self._slot.connection(obs) as conn:
            obs.details["server_version"] = conn.get_server_info()
            start = time.perf_counter()
            async with conn.cursor() as cursor:
                await cursor.execute(cfg.query)
                row = await cursor.fetchone()
                obs.add_phase("query", time.perf_counter() - start)
                for item in cfg.measure:
                    await self._measure(cursor, item, obs)
        cfg.check_expected(bool(row), row[0] if row else None)

    @staticmethod
    async def _measure(cursor: aiomysql.Cursor, item: str, obs: Observation) -> None:
        if item == "connections":
            await cursor.execute(
                "SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
                " WHERE VARIABLE_NAME = 'THREADS_CONNECTED'), @@max_connections"
            )
            used, limit = (float(v) for v in await cursor.fetchone())
            obs.values.update(connections=used, max_connections=limit, connections_used_ratio=round(used / limit, 4))
            return
        try:
            await cursor.execute("SHOW REPLICA STATUS")
        except pymysql.err.ProgrammingError:  # MySQL before 8.0.22, MariaDB before 10.5
            await cursor.execute("SHOW SLAVE STATUS")
        row = await cursor.fetchone()
        names = [d[0] for d in cursor.description or ()]
        status = dict(zip(names, row, strict=False)) if row else {}
        obs.values["replica"] = 1.0 if status else 0.0
        lag = status.get("Seconds_Behind_Source", status.get("Seconds_Behind_Master"))
        if lag is not None:
            obs.values["replication_lag_seconds"] = float(lag)

    async def aclose(self) -> None:
        await self._slot.aclose()


PROBE = MysqlProbe
