"""Neo4j probe (the official neo4j async driver, Bolt): connect, authenticate, run a query.

Success: the query (default `RETURN 1`) runs within the timeout on the chosen
database and, when `expect` is set (default 1 for the default query), the
first value of the first record equals it. The server's agent string
(e.g. Neo4j/5.20.0) is reported as a detail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import neo4j
import neo4j.exceptions as nexc
from pydantic import field_validator

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.results import Observation
from probe_agent.probes.base import Probe
from probe_agent.probes.clients.datastore import ConnectionSlot, QueryConfig


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

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return {"uri": target}

    def target(self) -> str:
        return self.uri


# Security errors the server sends on login, or on the first query after it (an expired password).
_SECURITY_MESSAGES = {
    "Neo.ClientError.Security.Unauthorized": "authentication failed",
    "Neo.ClientError.Security.AuthenticationRateLimit": "too many failed logins: the server refuses this user for a while",
    "Neo.ClientError.Security.CredentialsExpired": "the password has expired: change it before the probe can log in",
    "Neo.ClientError.Security.TokenExpired": "the auth token has expired",
    "Neo.ClientError.Security.Forbidden": "permission denied",
    "Neo.ClientError.Security.AuthorizationExpired": "authorization expired",
}


def without_query(message: str, query: str) -> str:
    """The server's message, first line only (the rest quotes the query with a caret), with any
    piece of the query in it replaced by '…': a query can hold names or literals not to show."""
    text = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    pieces = {query.strip(), *query.split("\n"), *query.split()}
    for piece in sorted((p.strip() for p in pieces if len(p.strip()) >= 3), key=len, reverse=True):
        text = text.replace(piece, "…")
    return text[:200]


def translate_for(query: str) -> Callable[[BaseException], ProbeError | None]:
    def translate(exc: BaseException) -> ProbeError | None:
        if isinstance(exc, nexc.Neo4jError) and (exc.code or "").startswith("Neo.ClientError.Security."):
            what = _SECURITY_MESSAGES.get(exc.code or "", "login refused")
            return ProbeError(Reason.AUTH, f"{what} ({exc.code})")
        if isinstance(exc, nexc.AuthError):
            return ProbeError(Reason.AUTH, f"authentication failed ({exc.code or 'AuthError'})")
        if isinstance(exc, nexc.Neo4jError):
            # The server's code (Neo.ClientError.Statement.SyntaxError) says what failed; its message
            # says where, once the query text is out of it.
            detail = without_query(exc.message or "", query)
            return ProbeError(
                Reason.PROTOCOL, f"query failed: {detail} ({exc.code})" if detail else f"query failed ({exc.code})"
            )
        return translate_driver(exc)

    return translate


def translate_driver(exc: BaseException) -> ProbeError | None:
    if isinstance(exc, nexc.ServiceUnavailable | nexc.SessionExpired):
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
    translate = staticmethod(translate_driver)  # each probe sets its own, for its query
    phase_metric = "probe_neo4j_duration_seconds"
    info_details = ("server_agent",)

    def __init__(self, config: Neo4jConfig):
        super().__init__(config)
        # the server's message may quote the query: this probe's translation knows which text to take out
        self.translate = translate_for(config.query)  # type: ignore[assignment]
        self._server_agent: str | None = None
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
            server = await driver.get_server_info()  # connects and logs in, as verify_connectivity does
        except BaseException:
            self._slot.discard(driver)
            raise
        self._server_agent = server.agent
        return driver

    @staticmethod
    async def _close(driver: neo4j.AsyncDriver) -> None:
        await driver.close()

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        async with self._slot.connection(obs) as driver:
            if self._server_agent:
                obs.details["server_agent"] = self._server_agent  # also when the query fails
            start = time.perf_counter()
            async with driver.session(database=cfg.database) as session:
                result = await session.run(cfg.query)
                record = await result.single(strict=False)
                await result.consume()
            obs.add_phase("query", time.perf_counter() - start)
        cfg.check_expected(record is not None, record[0] if record is not None and len(record) else None)

    async def aclose(self) -> None:
        await self._slot.aclose()


PROBE = Neo4jProbe
