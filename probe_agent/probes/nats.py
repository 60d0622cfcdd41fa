"""NATS server health probe: the monitoring endpoint's /varz and /healthz, optionally a client round trip.

Success: /healthz answers ok (with `jetstream: true`, also JetStream is
enabled and healthy), /varz is readable, and, when `servers` is set, a client
connects, authenticates and completes a PING/PONG round trip (flush). The
/varz fields an on-call engineer reads by hand become values with thresholds.

The client connection options here are shared with the nats_jetstream probe.
"""

from __future__ import annotations

import re
import ssl
import time
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
import nats
import nats.errors as nerr
import nats.js.errors as jserr
from pydantic import SecretStr, field_validator

from probe_agent.config import HttpUrl, ProbeConfig
from probe_agent.errors import ProbeError, Reason
from probe_agent.model import Observation, ValueSpec
from probe_agent.probes.base import Probe
from probe_agent.probes.common import ConnectionSlot
from probe_agent.probes.http import (
    make_session,
    parse_json,
    read_capped,
    translate_client_error,
)
from probe_agent.tls import client_context

_UPTIME_PART = re.compile(r"(\d+)([ywdhms])")
_UPTIME_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


class NatsClientConfig(ProbeConfig):
    """How to reach NATS as a client (nats-py). `password` and `token` are redacted everywhere."""

    servers: list[str] = []  # nats://host:4222 (tls:// for TLS); empty: no client connection
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    nkey_seed_file: str | None = None  # NKEY seed file
    credentials_file: str | None = None  # .creds file (JWT + NKEY)
    tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    pool: bool = False  # keep the client connection between runs

    @field_validator("servers", mode="before")
    @classmethod
    def _servers(cls, value: Any) -> Any:
        servers = [value] if isinstance(value, str) else value
        for server in servers or []:
            if urlsplit(str(server)).scheme not in ("nats", "tls") or not urlsplit(str(server)).hostname:
                raise ValueError(f"invalid server {server!r}: expected nats://host:4222 or tls://host:4222")
        return servers

    def client_slot(self) -> ConnectionSlot[nats.NATS]:
        tls: ssl.SSLContext | None = None
        if self.tls or any(s.startswith("tls://") for s in self.servers):
            tls = client_context(self.tls_verify, self.ca_file, self.cert_file, self.key_file)

        async def on_error(_exc: Exception) -> None:
            # nats-py reports connection errors here and logs them by default; the probe
            # reports them itself, redacted, so stay quiet.
            return None

        async def connect() -> nats.NATS:
            client = nats.NATS()
            try:
                await client.connect(
                    servers=self.servers,
                    user=self.user,
                    password=self.password.get_secret_value() if self.password else None,
                    token=self.token.get_secret_value() if self.token else None,
                    nkeys_seed=self.nkey_seed_file,
                    user_credentials=self.credentials_file,
                    tls=tls,
                    connect_timeout=self.timeout,
                    allow_reconnect=False,  # one probe, one deadline; pool: true reconnects on the next run
                    max_reconnect_attempts=0,
                    error_cb=on_error,
                    name="probe-agent",
                )
            except BaseException:
                # nats-py leaves the socket of a refused handshake (bad credentials) open
                slot.discard(client)
                raise
            return client

        async def close(client: nats.NATS) -> None:
            await client.close()

        def abort(client: nats.NATS) -> None:
            transport = getattr(client, "_transport", None)
            if transport is not None:
                transport.close()

        slot = ConnectionSlot(connect, close, abort, self.pool)
        return slot


def translate_nats(exc: BaseException) -> ProbeError | None:
    if isinstance(exc, nerr.AuthorizationError) or "authorization violation" in str(exc).lower():
        return ProbeError(Reason.AUTH, "authorization violation: the server refused the credentials")
    if isinstance(exc, (nerr.NoServersError, ConnectionRefusedError)):
        return ProbeError(Reason.CONNECT, "cannot connect: connection refused")
    if isinstance(exc, (nerr.TimeoutError, nerr.FlushTimeoutError)):
        return ProbeError(Reason.TIMEOUT, "timed out")
    if isinstance(exc, (nerr.SecureConnFailedError, nerr.SecureConnRequiredError, nerr.SecureConnWantedError)):
        return ProbeError(Reason.TLS, f"TLS: {exc}")
    if isinstance(exc, (nerr.ConnectionClosedError, nerr.StaleConnectionError, nerr.UnexpectedEOF)):
        return ProbeError(Reason.CONNECT, "connection lost")
    if isinstance(exc, (jserr.ServiceUnavailableError, nerr.NoRespondersError)):
        return ProbeError(Reason.PROTOCOL, "JetStream not available on this server or account")
    if isinstance(exc, jserr.APIError):
        return ProbeError(Reason.PROTOCOL, f"JetStream API error {exc.err_code}: {exc.description}")
    if isinstance(exc, nerr.Error):
        return ProbeError(Reason.PROTOCOL, f"{type(exc).__name__}: {exc}")
    return None


async def get_monitor_json(session: aiohttp.ClientSession, base: str, path: str) -> Any:
    """GET a monitoring endpoint and return its JSON; failures as ProbeError."""
    try:
        async with session.get(urljoin(base.rstrip("/") + "/", path.lstrip("/"))) as response:
            body = await read_capped(response, 16 * 1024 * 1024)
            status = response.status
    except aiohttp.ClientError as exc:
        translated = translate_client_error(exc)
        assert translated is not None
        raise ProbeError(translated.reason, f"monitoring {path.split('?')[0]}: {translated.message}") from exc
    document = parse_json(body)
    return status, document


def parse_uptime(text: str) -> float:
    return float(sum(int(n) * _UPTIME_UNITS[u] for n, u in _UPTIME_PART.findall(text)))


class NatsConfig(NatsClientConfig):
    type: Literal["nats"]
    monitor_url: HttpUrl  # http://host:8222
    jetstream: bool = False  # also require JetStream to be enabled and healthy (/healthz?js-enabled-only=true)

    def target(self) -> str:
        return self.monitor_url


VARZ_VALUES = {
    # value name: (varz field, metric, help, scale)
    "connections": ("connections", "probe_nats_connections", "Client connections open (varz connections).", 1),
    "total_connections": ("total_connections", "probe_nats_total_connections", "Connections since start.", 1),
    "slow_consumers": ("slow_consumers", "probe_nats_slow_consumers", "Slow consumers seen since start.", 1),
    "subscriptions": ("subscriptions", "probe_nats_subscriptions", "Active subscriptions.", 1),
    "memory_bytes": ("mem", "probe_nats_memory_bytes", "Resident memory of the server in bytes.", 1),
    "cpu_ratio": ("cpu", "probe_nats_cpu_ratio", "Server CPU use, 1 = one core busy (varz cpu / 100).", 0.01),
    "in_messages": ("in_msgs", "probe_nats_in_messages", "Messages received since start (varz in_msgs).", 1),
    "out_messages": ("out_msgs", "probe_nats_out_messages", "Messages sent since start (varz out_msgs).", 1),
    "in_bytes": ("in_bytes", "probe_nats_in_bytes", "Bytes received since start.", 1),
    "out_bytes": ("out_bytes", "probe_nats_out_bytes", "Bytes sent since start.", 1),
}


class NatsProbe(Probe[NatsConfig]):
    config_model = NatsConfig
    translate = staticmethod(translate_nats)
    phase_metric = "probe_nats_duration_seconds"
    values = {
        **{name: ValueSpec(metric, help_text) for name, (_f, metric, help_text, _s) in VARZ_VALUES.items()},
        "uptime_seconds": ValueSpec("probe_nats_uptime_seconds", "Seconds since the server started."),
    }

    def __init__(self, config: NatsConfig):
        super().__init__(config)
        self._tls = client_context(config.tls_verify, config.ca_file)
        self._session: aiohttp.ClientSession | None = None
        self._client = config.client_slot() if config.servers else None

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        if self._session is None:
            self._session = make_session(self._tls)
        start = time.perf_counter()
        health_path = "/healthz?js-enabled-only=true" if cfg.jetstream else "/healthz"
        status, health = await get_monitor_json(self._session, cfg.monitor_url, health_path)
        _, varz = await get_monitor_json(self._session, cfg.monitor_url, "/varz")
        obs.add_phase("monitor", time.perf_counter() - start)
        for name, (field, _metric, _help, scale) in VARZ_VALUES.items():
            if isinstance(varz.get(field), (int, float)):
                obs.values[name] = round(varz[field] * scale, 6)
        if isinstance(varz.get("uptime"), str):
            obs.values["uptime_seconds"] = parse_uptime(varz["uptime"])
        obs.details["server_version"] = str(varz.get("version", ""))
        if status != 200 or not isinstance(health, dict) or health.get("status") != "ok":
            error = health.get("error") if isinstance(health, dict) else None
            raise ProbeError(Reason.ASSERTION, f"/healthz: {error or health.get('status') if isinstance(health, dict) else status}")
        if self._client is not None:
            await self._round_trip(obs)

    async def _round_trip(self, obs: Observation) -> None:
        assert self._client is not None
        async with self._client.connection(obs) as client:
            start = time.perf_counter()
            await client.flush(timeout=max(self.config.timeout, 0.1))
            obs.add_phase("round_trip", time.perf_counter() - start)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._session is not None:
            await self._session.close()
