"""Redis probe (redis.asyncio): PING must answer PONG.

Success: PING answers within the timeout (after AUTH when a password is set).
Optional `measure` reads INFO for connected_clients, used_memory, role and,
on a replica, master_link_status. The client's own retries are off: a probe
has exactly one deadline (redis-py would otherwise retry a black-holed server
for many times the timeout).
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import redis.asyncio as aioredis
import redis.exceptions as rexc
from pydantic import Field
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from probe_agent.core.errors import ErrorRule, ErrorTable, ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, host_port
from probe_agent.probes.clients.datastore import ConnectionSlot, DatastoreConfig


class RedisConfig(DatastoreConfig):
    type: Literal["redis"]
    default_port = 6379
    db: int = Field(0, ge=0)  # database index selected after connecting
    measure: list[Literal["clients", "memory", "replication"]] = []
    tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return host_port(target)

    def target(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


def _auth_refused(exc: BaseException) -> bool:
    return str(exc).startswith(("WRONGPASS", "NOAUTH", "NOPERM"))


def _connection_error(exc: BaseException) -> str:
    text = str(exc)
    if "refused" in text.lower() or isinstance(exc.__cause__, ConnectionRefusedError):
        return "connection refused"
    return text.split(". ")[0] or "connection error"


def _tls_error(exc: BaseException) -> str:
    verify = re.search(r"certificate verify failed: ([^(]+)", str(exc))
    return f"TLS: {verify.group(1).strip() if verify else exc}"


ERRORS = ErrorTable(
    ErrorRule(rexc.AuthenticationError, Reason.AUTH, lambda exc: f"authentication failed: {str(exc).split(';')[0]}"),
    ErrorRule(
        rexc.ResponseError,
        Reason.AUTH,
        lambda exc: f"authentication failed: {str(exc).split(';')[0]}",
        when=_auth_refused,
    ),
    ErrorRule(rexc.TimeoutError, Reason.TIMEOUT, "timed out"),
    # redis-py folds the ssl error into its message
    ErrorRule(rexc.ConnectionError, Reason.TLS, _tls_error, when=lambda exc: "[SSL" in str(exc)),
    ErrorRule(rexc.ConnectionError, Reason.CONNECT, _connection_error),
    ErrorRule(rexc.BusyLoadingError, Reason.PROTOCOL, "server is loading its dataset"),
    ErrorRule(rexc.RedisError, Reason.PROTOCOL, "command failed: {exc}"),
)


class RedisProbe(Probe[RedisConfig]):
    config_model = RedisConfig
    example = """\
- name: session-cache
  type: redis
  host: cache.example.internal
  measure: [clients, memory, replication]
  pool: true
  thresholds:
    used_memory_bytes: {warning: 1.5e9}
"""
    errors = ERRORS
    phase_metric = "probe_redis_duration_seconds"
    shown_values = ("connected_clients", "used_memory_bytes")
    values = {
        "connected_clients": ValueSpec("probe_redis_connected_clients", "INFO connected_clients."),
        "used_memory_bytes": ValueSpec("probe_redis_used_memory_bytes", "INFO used_memory."),
        "replica": ValueSpec("probe_redis_replica", "1 if INFO role is slave (a replica), 0 if master."),
        "master_link_up": ValueSpec("probe_redis_master_link_up", "On a replica: 1 if master_link_status is up."),
    }

    def __init__(self, config: RedisConfig):
        super().__init__(config)
        self._slot = ConnectionSlot(self._connect, self._close, self._abort, config.pool)

    async def _connect(self) -> aioredis.Redis:
        cfg = self.config
        client = aioredis.Redis(
            host=cfg.host,
            port=cfg.port,
            db=cfg.db,
            username=cfg.user,
            password=cfg.secret_password(),
            ssl=cfg.tls,
            ssl_cert_reqs="required" if cfg.tls_verify else "none",
            ssl_check_hostname=cfg.tls_verify,
            ssl_ca_certs=cfg.ca_file,
            socket_connect_timeout=cfg.timeout,
            socket_timeout=cfg.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            single_connection_client=True,
        )
        await client.initialize()
        return client

    @staticmethod
    async def _close(client: aioredis.Redis) -> None:
        await client.aclose()

    @staticmethod
    def _abort(client: aioredis.Redis) -> None:
        # Synchronous on purpose: it may run while the probe is being cancelled.
        conn, client.connection = client.connection, None
        writer = getattr(conn, "_writer", None)
        if writer is not None:
            writer.transport.abort()

    async def run(self, obs: Observation) -> None:
        async with self._slot.connection(obs) as client:
            start = time.perf_counter()
            answer = await client.execute_command("PING")  # type: ignore[no-untyped-call]  # untyped in redis-py
            obs.add_phase("ping", time.perf_counter() - start)
            if answer not in (True, b"PONG", "PONG"):
                raise ProbeError(Reason.ASSERTION, f"PING answered {answer!r}, expected PONG")
            if self.config.measure:
                self._measure(await client.info(), obs)

    def _measure(self, info: dict[str, object], obs: Observation) -> None:
        measure = self.config.measure
        if "clients" in measure:
            obs.values["connected_clients"] = float(info.get("connected_clients", 0))  # type: ignore[arg-type]
        if "memory" in measure:
            obs.values["used_memory_bytes"] = float(info.get("used_memory", 0))  # type: ignore[arg-type]
        if "replication" in measure:
            replica = info.get("role") == "slave"
            obs.values["replica"] = 1.0 if replica else 0.0
            obs.details["role"] = str(info.get("role"))
            if replica:
                obs.values["master_link_up"] = 1.0 if info.get("master_link_status") == "up" else 0.0

    async def aclose(self) -> None:
        await self._slot.aclose()


PROBE = RedisProbe
