"""AMQP 0-9-1 queue probe (RabbitMQ): connect, authenticate, passive-declare one queue.

Success: the broker accepts the login on the vhost and the queue exists. The
passive declare reports the messages ready and the consumers; with
`management_url`, the management API adds the unacknowledged messages (its
figures are refreshed by the broker every 5 s). As with nats_jetstream, a queue
is a dead-letter queue by default (`dlq: true`): any depth warns unless the
probe's thresholds say otherwise; a missing queue is critical and named.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import aiormq
import aiormq.exceptions as amqp_errors
from pydantic import Field

from probe_agent.core.errors import ErrorRule, ErrorTable, ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, host_port
from probe_agent.probes.clients.datastore import ConnectionSlot, DatastoreConfig
from probe_agent.probes.clients.httpchecks import parse_json
from probe_agent.probes.clients.httpclient import http_client_context, make_session, read_capped, translate_client_error
from probe_agent.probes.clients.tls import client_context
from probe_agent.schema.fields import HttpUrl

# aiormq logs every failed connection attempt with a traceback; the probe reports it instead.
logging.getLogger("aiormq").setLevel(logging.CRITICAL)


class AmqpConfig(DatastoreConfig):
    type: Literal["amqp"]
    default_port = 5672

    user: str | None = "guest"
    vhost: str = "/"
    queue: str = Field(min_length=1, max_length=255)
    dlq: bool = True  # a dead-letter queue: warn on depth > 0 unless thresholds say otherwise
    management_url: HttpUrl | None = None  # http://host:15672, for the unacknowledged messages
    tls: bool = False  # amqps
    tls_verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def default_thresholds(cls, raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        return {"depth": {"warning": "> 0"}} if raw.get("dlq", True) else {}

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return host_port(target)

    def target(self) -> str:
        vhost = quote(self.vhost, safe="")
        return f"{'amqps' if self.tls else 'amqp'}://{self.host}:{self.port}/{vhost} queue {self.queue}"


def _refused(exc: BaseException) -> bool:
    errno_text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[0], int) else None
    return isinstance(errno_text, str) and "Connect call failed" in errno_text


def _cause(exc: BaseException) -> BaseException | None:
    return exc.__cause__ or exc.__context__


ERRORS = ErrorTable(
    ErrorRule(
        (amqp_errors.ProbableAuthenticationError, amqp_errors.AuthenticationError),
        Reason.AUTH,
        "login refused by the broker (user or password)",
    ),
    ErrorRule(amqp_errors.ChannelAccessRefused, Reason.AUTH, lambda exc: f"access refused: {_reply_text(exc)}"),
    # RabbitMQ closes the connection when the vhost does not exist or the user may not use it
    ErrorRule(
        amqp_errors.InvalidFrameError,
        Reason.AUTH,
        "the broker closed the connection on opening the vhost: it does not exist or the user may not use it",
        when=lambda exc: "Connection.Close" in str(exc),
    ),
    ErrorRule(
        amqp_errors.IncompatibleProtocolError, Reason.PROTOCOL, "the server did not answer as an AMQP 0-9-1 broker"
    ),
    ErrorRule(
        amqp_errors.AMQPConnectionError,
        Reason.PROTOCOL,
        "the server did not answer as an AMQP 0-9-1 broker",
        when=lambda exc: "bytes expected" in str(exc),
    ),
    ErrorRule(amqp_errors.AMQPConnectionError, Reason.CONNECT, "connection refused", when=_refused),
    ErrorRule(
        amqp_errors.AMQPConnectionError,
        Reason.TLS,
        lambda exc: f"certificate verify failed: {getattr(_cause(exc), 'verify_message', '')}",
        when=lambda exc: isinstance(_cause(exc), ssl.SSLCertVerificationError),
    ),
    ErrorRule(
        amqp_errors.AMQPConnectionError,
        Reason.TLS,
        lambda exc: f"TLS handshake failed: {getattr(_cause(exc), 'reason', '')}",
        when=lambda exc: isinstance(_cause(exc), ssl.SSLError),
    ),
    ErrorRule(amqp_errors.AMQPConnectionError, Reason.CONNECT, lambda exc: f"connection failed: {_reply_text(exc)}"),
    ErrorRule(amqp_errors.AMQPError, Reason.PROTOCOL, lambda exc: f"AMQP: {type(exc).__name__}: {_reply_text(exc)}"),
)


def _reply_text(exc: BaseException) -> str:
    return str(exc.args[0]) if len(exc.args) == 1 else str(exc)


class AmqpProbe(Probe[AmqpConfig]):
    config_model = AmqpConfig
    example = """\
- name: orders-dlq
  type: amqp
  host: rabbitmq.example.internal
  user: probe
  password: ${RABBITMQ_PASSWORD:-}
  vhost: shop
  queue: orders.dlq
  management_url: http://rabbitmq.example.internal:15672
  thresholds:
    depth: {warning: "> 0", critical: "> 100"}"""
    errors = ERRORS
    phase_metric = "probe_amqp_duration_seconds"
    shown_values = ("depth", "messages_unacknowledged", "consumers")
    values = {
        "depth": ValueSpec(None, "Messages ready, plus unacknowledged with management_url (for thresholds)."),
        "messages_ready": ValueSpec(
            "probe_amqp_messages_ready", "Messages ready for delivery (passive queue.declare)."
        ),
        "messages_unacknowledged": ValueSpec(
            "probe_amqp_messages_unacknowledged", "Messages delivered and not yet acknowledged (management API)."
        ),
        "consumers": ValueSpec("probe_amqp_consumers", "Consumers on the queue."),
    }

    @classmethod
    def config_info(cls, config: Any) -> dict[str, str]:
        # deploy/alerts.yml's DeadLetterQueueNotEmpty selects on it
        return {"dlq": "true" if config.dlq else "false"}

    def __init__(self, config: AmqpConfig):
        super().__init__(config)
        self._tls = (
            client_context(config.tls_verify, config.ca_file, config.cert_file, config.key_file) if config.tls else None
        )
        self._slot = ConnectionSlot(self._connect, self._close, self._abort, config.pool)
        self._session: aiohttp.ClientSession | None = None
        self._management_tls = (
            http_client_context(config.tls_verify, config.ca_file, None, None)
            if config.management_url and config.management_url.startswith("https")
            else None
        )

    async def _connect(self) -> aiormq.Connection:
        cfg = self.config
        connection = aiormq.Connection(
            _amqp_url(cfg), context=self._tls, client_properties={"connection_name": f"probe-agent {cfg.name}"}
        )
        await connection.connect()  # closes its socket itself when the handshake fails or is cancelled
        return connection

    @staticmethod
    async def _close(connection: aiormq.Connection) -> None:
        await connection.close()

    @staticmethod
    def _abort(connection: aiormq.Connection) -> None:
        # Synchronous on purpose: it may run while the probe is being cancelled. aiormq keeps
        # the socket in these two tasks only; its writer closes the socket when cancelled.
        for task in (connection._reader_task, connection._writer_task):
            if task is not None:
                task.cancel()

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        async with self._slot.connection(obs) as connection:
            start = time.perf_counter()
            channel = await connection.channel()
            try:
                declared = await channel.queue_declare(cfg.queue, passive=True)
            except amqp_errors.ChannelNotFoundEntity:
                raise ProbeError(Reason.ASSERTION, f"queue {cfg.queue!r} not found in vhost {cfg.vhost!r}") from None
            finally:
                obs.add_phase("declare", time.perf_counter() - start)
            if not channel.is_closed:
                await channel.close()
        ready = float(declared.message_count or 0)
        obs.values["messages_ready"] = ready
        obs.values["consumers"] = float(declared.consumer_count or 0)
        obs.values["depth"] = ready
        if cfg.management_url:
            unacknowledged = await self._read_management(obs)
            obs.values["messages_unacknowledged"] = unacknowledged
            obs.values["depth"] = ready + unacknowledged

    async def _read_management(self, obs: Observation) -> float:
        cfg = self.config
        assert cfg.management_url is not None
        if self._session is None:
            self._session = make_session(self._management_tls, fresh_connections=False)
        url = f"{cfg.management_url.rstrip('/')}/api/queues/{quote(cfg.vhost, safe='')}/{quote(cfg.queue, safe='')}"
        credentials = f"{cfg.user or ''}:{cfg.secret_password() or ''}".encode()
        auth = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
        start = time.perf_counter()
        try:
            async with self._session.get(url, headers=auth) as response:
                body = await read_capped(response, 1024 * 1024)
                status = response.status
        except aiohttp.ClientError as exc:
            translated = translate_client_error(exc)
            assert translated is not None
            raise ProbeError(translated.reason, f"management API: {translated.message}") from exc
        finally:
            obs.add_phase("management", time.perf_counter() - start)
        if status == 401:
            raise ProbeError(Reason.AUTH, "management API refused the login (the user needs the monitoring tag)")
        if status != 200:
            raise ProbeError(Reason.PROTOCOL, f"management API answered {status} for the queue")
        document = parse_json(body)
        if not isinstance(document, dict):
            raise ProbeError(Reason.PROTOCOL, "management API: unexpected answer")
        # absent until the broker's first statistics round (every 5 s) after the queue was made
        return float(document.get("messages_unacknowledged") or 0)

    async def aclose(self) -> None:
        await self._slot.aclose()
        if self._session is not None:
            await self._session.close()


def _amqp_url(cfg: AmqpConfig) -> str:
    user = quote(cfg.user or "", safe="")
    password = quote(cfg.secret_password() or "", safe="")
    credentials = f"{user}:{password}@" if user or password else ""
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    # heartbeat=0: a probe connection lives one run; timeouts are the runner's
    return f"{'amqps' if cfg.tls else 'amqp'}://{credentials}{host}:{cfg.port}/{quote(cfg.vhost, safe='')}?heartbeat=0"


PROBE = AmqpProbe
