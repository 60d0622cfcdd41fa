"""Neo4j probe (the official neo4j async driver, Bolt): connect, authenticate, run a query.

Success: the query (default `RETURN 1`) runs within the timeout on the chosen
database and, when `expect` is set (default 1 for the default query), the
first value of the first record equals it. The server's agent string
(e.g. Neo4j/5.20.0) is reported as a detail.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal
from urllib.parse import urlsplit

import neo4j
import neo4j.exceptions as nexc
from pydantic import field_validator

from probe_agent.datastore import ConnectionSlot, QueryConfig
from probe_agent.errors import ProbeError, Reason
from probe_agent.model import Observation
from probe_agent.probe import Probe


class Neo4jConfig(QueryConfig):
    default_query: ClassVar[str] = "RETURN 1"

    type: Literal["neo4j"]
    uri: str  # bolt://host:7687, neo4j://host:7687 (routing), or the +s / +ssc TLS variants

    @field_validator("uri")
    @classmethod
    def _uri(cls, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme not in ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc") or not parts.hostname:
            raise ValueError("must be a bolt:// or neo4j:// URI with a host (optionally +s or +ssc)")
        return uri

    def target(self) -> str:
        return self.uri


def translate(exc: BaseException) -> ProbeError | None:
    if isinstance(exc, nexc.AuthError):
        return ProbeError(Reason.AUTH, f"authentication failed ({exc.code or 'AuthError'})")
    if isinstance(exc, nexc.Neo4jError):
        # The server's code (Neo.ClientError.Statement.SyntaxError) says what failed; its message may quote the query.
        return ProbeError(Reason.PROTOCOL, f"query failed ({exc.code})")
    if isinstance(exc, (nexc.ServiceUnavailable, nexc.SessionExpired)):
        chain: list[BaseException] = []
        link: BaseException | None = exc
        while link is not None and len(chain) < 10:
            chain.append(link)
            link = link.__cause__ or link.__context__
        if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower():
            return ProbeError(Reason.CONNECT, "connection refused")
        if "defunct connection" in str(exc):
            return ProbeError(Reason.CONNECT, "connection lost during the request")
        return ProbeError(Reason.CONNECT, f"service unavailable: {' '.join(str(exc).split())[:200]}")
    if isinstance(exc, nexc.DriverError):
        return ProbeError(Reason.PROTOCOL, f"driver error: {type(exc).__name__}: {exc}")
    return None


class Neo4jProbe(Probe[Neo4jConfig]):
    config_model = Neo4jConfig
    example = """\
- name: graph-db
  type: neo4j
  uri: bolt://graph.example.internal:7687
  user: neo4j
  password: ${NEO4J_PASSWORD:-}
"""
    translate = staticmethod(translate)
    phase_metric = "probe_neo4j_duration_seconds"
    values = {}

    def __init__(self, config: Neo4jConfig):
        super().__init__(config)
        # The driver has no synchronous abort; a close that hangs is left to the driver's own timeouts.
        self._slot = ConnectionSlot(self._connect, self._close, lambda driver: None, config.pool)

    async def _connect(self) -> neo4j.AsyncDriver:
        cfg = self.config
        auth = (cfg.user or "neo4j", cfg.secret_password() or "") if cfg.user or cfg.password else None
        driver = neo4j.AsyncGraphDatabase.driver(
            cfg.uri,
            auth=auth,
            connection_timeout=cfg.timeout,
            connection_acquisition_timeout=cfg.timeout,
            max_transaction_retry_time=0,
            max_connection_pool_size=1,
            user_agent="probe-agent",
        )
        try:
            await driver.verify_connectivity()
        except BaseException:
            self._slot.discard(driver)
            raise
        return driver

    @staticmethod
    async def _close(driver: neo4j.AsyncDriver) -> None:
        await driver.close()

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        async with self._slot.connection(obs) as driver:
            start = time.perf_counter()
            async with driver.session(database=cfg.database) as session:
                result = await session.run(cfg.query)
                record = await result.single(strict=False)
                summary = await result.consume()
            obs.add_phase("query", time.perf_counter() - start)
            if summary.server.agent:
                obs.details["server_agent"] = summary.server.agent
        cfg.check_expected(record is not None, record[0] if record is not None and len(record) else None)

    async def aclose(self) -> None:
        await self._slot.aclose()



PROBE = Neo4jProbe
