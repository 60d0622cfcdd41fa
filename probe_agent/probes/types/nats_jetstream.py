"""NATS JetStream backlog probe: the depth of a dead-letter queue, or of any stream or consumer.

Depth is the stream's message count (work-queue retention: what is stored is
the backlog), or, when `consumer` is named, that consumer's num_pending +
num_ack_pending (limits retention keeps acked messages, so the stream count
says nothing). Read over the client protocol by default, or from the
monitoring port's /jsz for agents that only reach that. Success: the stream
(and consumer) exist; depth is a value with thresholds, by default the DLQ
runbook's "more than 0 is a warning".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp
import nats.js.errors as jserr
from pydantic import model_validator

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe
from probe_agent.probes.clients.httpclient import http_client_context, make_session
from probe_agent.probes.clients.natsclient import NatsClientConfig, get_monitor_json, translate_nats
from probe_agent.schema.fields import HttpUrl

STREAM_NOT_FOUND = 10059
CONSUMER_NOT_FOUND = 10014


class NatsJetstreamConfig(NatsClientConfig):
    type: Literal["nats_jetstream"]
    stream: str  # the stream holding the DLQ or the work
    consumer: str | None = None  # durable consumer whose backlog to read
    source: Literal["client", "monitor"] = "client"  # client protocol (servers) or /jsz (monitor_url)
    monitor_url: HttpUrl | None = None  # http://host:8222, for source: monitor
    account: str | None = None  # with source: monitor, the account to look in (default: any)
    dlq: bool = True  # a dead-letter queue: warn on depth > 0 unless thresholds say otherwise

    @classmethod
    def default_thresholds(cls, raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        return {"depth": {"warning": "> 0"}} if raw.get("dlq", True) else {}

    @model_validator(mode="after")
    def _source(self) -> NatsJetstreamConfig:
        if self.source == "client" and not self.servers:
            raise ValueError("servers: required with source: client (or set source: monitor and monitor_url)")
        if self.source == "monitor" and not self.monitor_url:
            raise ValueError("monitor_url: required with source: monitor")
        return self

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return {"servers": [target]}

    def target(self) -> str:
        where = self.monitor_url if self.source == "monitor" else ",".join(self.servers)
        return f"{where} stream={self.stream}" + (f" consumer={self.consumer}" if self.consumer else "")


class NatsJetstreamProbe(Probe[NatsJetstreamConfig]):
    config_model = NatsJetstreamConfig
    example = """\
- name: orders-dlq
  type: nats_jetstream
  servers: [nats://nats.example.internal:4222]
  stream: ORDERS_DLQ
  thresholds:
    depth: {warning: "> 0", critical: "> 100"}
"""
    translate = staticmethod(translate_nats)
    phase_metric = "probe_nats_jetstream_duration_seconds"
    shown_values = ("depth",)
    values = {
        "depth": ValueSpec(
            "probe_nats_jetstream_pending_messages",
            "Backlog: stream messages, or the consumer's pending plus unacknowledged messages.",
        ),
        "stream_messages": ValueSpec("probe_nats_jetstream_stream_messages", "Messages stored in the stream."),
        "ack_pending": ValueSpec("probe_nats_jetstream_ack_pending_messages", "Delivered, not yet acknowledged."),
        "redelivered": ValueSpec("probe_nats_jetstream_redelivered_messages", "Messages the consumer redelivered."),
    }

    @classmethod
    def config_info(cls, config: Any) -> dict[str, str]:
        # deploy/alerts.yml's DeadLetterQueueNotEmpty selects on it
        return {"dlq": "true" if config.dlq else "false"}

    def __init__(self, config: NatsJetstreamConfig):
        super().__init__(config)
        self._client = config.client_slot() if config.source == "client" else None
        self._session: aiohttp.ClientSession | None = None
        self._tls = (
            http_client_context(config.tls_verify, config.ca_file, None, None) if config.source == "monitor" else None
        )

    async def run(self, obs: Observation) -> None:
        start = time.perf_counter()
        if self._client is not None:
            await self._read_client(obs)
        else:
            await self._read_monitor(obs)
        obs.add_phase("read", time.perf_counter() - start)

    async def _read_client(self, obs: Observation) -> None:
        cfg = self.config
        assert self._client is not None
        async with self._client.connection(obs) as client:
            js = client.jetstream(timeout=cfg.timeout)
            try:
                stream = await js.stream_info(cfg.stream)
                obs.values["stream_messages"] = float(stream.state.messages)
                if cfg.consumer is None:
                    obs.values["depth"] = float(stream.state.messages)
                    return
                consumer = await js.consumer_info(cfg.stream, cfg.consumer)
            except jserr.NotFoundError as exc:
                raise self._not_found(exc.err_code) from exc
            self._record_consumer(obs, consumer.num_pending, consumer.num_ack_pending, consumer.num_redelivered)

    async def _read_monitor(self, obs: Observation) -> None:
        cfg = self.config
        assert cfg.monitor_url is not None
        if self._session is None:
            self._session = make_session(self._tls)
        path = "/jsz?accounts=true&streams=true&consumers=true" + (f"&acc={cfg.account}" if cfg.account else "")
        status, jsz = await get_monitor_json(self._session, cfg.monitor_url, path, obs)
        if status != 200 or not isinstance(jsz, dict):
            raise ProbeError(Reason.PROTOCOL, f"monitoring /jsz answered {status}")
        if jsz.get("disabled") or (jsz.get("config") is None and not jsz.get("account_details")):
            raise ProbeError(Reason.PROTOCOL, "JetStream not enabled on this server")
        for account in jsz.get("account_details") or []:
            if cfg.account and account.get("name") != cfg.account:
                continue
            for stream in account.get("stream_detail") or []:
                if stream.get("name") != cfg.stream:
                    continue
                messages = float(stream.get("state", {}).get("messages", 0))
                obs.values["stream_messages"] = messages
                if cfg.consumer is None:
                    obs.values["depth"] = messages
                    return
                for consumer in stream.get("consumer_detail") or []:
                    if consumer.get("name") == cfg.consumer:
                        self._record_consumer(
                            obs,
                            consumer.get("num_pending", 0),
                            consumer.get("num_ack_pending", 0),
                            consumer.get("num_redelivered", 0),
                        )
                        return
                raise self._not_found(CONSUMER_NOT_FOUND)
        raise self._not_found(STREAM_NOT_FOUND)

    @staticmethod
    def _record_consumer(obs: Observation, pending: int, ack_pending: int, redelivered: int) -> None:
        obs.values["depth"] = float(pending + ack_pending)
        obs.values["ack_pending"] = float(ack_pending)
        obs.values["redelivered"] = float(redelivered)

    def _not_found(self, err_code: int | None) -> ProbeError:
        if err_code == CONSUMER_NOT_FOUND:
            return ProbeError(
                Reason.ASSERTION, f"consumer {self.config.consumer!r} not found on stream {self.config.stream!r}"
            )
        return ProbeError(Reason.ASSERTION, f"stream {self.config.stream!r} not found")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._session is not None:
            await self._session.close()


PROBE = NatsJetstreamProbe
