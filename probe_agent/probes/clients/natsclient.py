"""NATS pieces the nats and nats_jetstream probe types share: the client connection
options and slot, nats-py's exceptions as a Reason, and reading the monitoring endpoint."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import nats.errors as nerr
import nats.js.errors as jserr
from nats.aio.client import Client as NatsClient
from pydantic import SecretStr, field_validator

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.files import check_named_file
from probe_agent.core.results import Observation
from probe_agent.probes.base import ProbeConfig
from probe_agent.probes.clients.datastore import ConnectionSlot
from probe_agent.probes.clients.httpchecks import parse_json
from probe_agent.probes.clients.httpclient import read_capped, translate_client_error
from probe_agent.probes.clients.tls import client_context


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

    def client_slot(self) -> ConnectionSlot[NatsClient]:
        # nats-py opens these itself at every connect, on the event loop: they must be files
        for field, path in (("nkey_seed_file", self.nkey_seed_file), ("credentials_file", self.credentials_file)):
            if path:
                check_named_file(path, field, 64 * 1024)
        tls: ssl.SSLContext | None = None
        if self.tls or any(s.startswith("tls://") for s in self.servers):
            tls = client_context(self.tls_verify, self.ca_file, self.cert_file, self.key_file)

        async def connect() -> NatsClient:
            client = NatsClient()
            errors: list[Exception] = []

            async def on_error(exc: Exception) -> None:
                # nats-py reports connection errors here and logs them by default; the probe
                # reports them itself, redacted: keep the last, to say why no server was reached
                errors[:] = [exc]

            try:
                await client.connect(
                    servers=self.servers,
                    user=self.user,
                    password=self.password.get_secret_value() if self.password else None,
                    token=self.token.get_secret_value() if self.token else None,
                    nkeys_seed=self.nkey_seed_file,
                    user_credentials=self.credentials_file,
                    tls=tls,
                    connect_timeout=self.timeout,  # type: ignore[arg-type]  # annotated int, used as wait_for seconds
                    allow_reconnect=False,  # one probe, one deadline; pool: true reconnects on the next run
                    # nats-py tries each server again until max_reconnect_attempts is passed (0 is
                    # "forever", every 2 s): a refused port took the whole timeout. 1 and no wait:
                    # each server twice, at once, then the last error.
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    error_cb=on_error,
                    name="probe-agent",
                )
            except nerr.NoServersError:
                slot.discard(client)
                if errors:
                    raise errors[0] from None
                raise
            except BaseException:
                # nats-py leaves the socket of a refused handshake (bad credentials) open
                slot.discard(client)
                raise
            return client

        async def close(client: NatsClient) -> None:
            await client.close()

        def abort(client: NatsClient) -> None:
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


async def get_monitor_json(session: aiohttp.ClientSession, base: str, path: str, obs: Observation | None = None) -> Any:
    """GET a monitoring endpoint and return its JSON; failures as ProbeError. With a tracing
    observation, the answer goes into the trace (its first KB)."""
    url = urljoin(base.rstrip("/") + "/", path.lstrip("/"))
    try:
        async with session.get(url) as response:
            body = await read_capped(response, 16 * 1024 * 1024)
            status = response.status
        if obs is not None and obs.trace is not None:
            obs.note(f"monitoring GET {url}: {status}, {len(body)} bytes")
            obs.note("< " + " ".join(body[:1024].decode("utf-8", errors="replace").split()))
    except aiohttp.ClientError as exc:
        translated = translate_client_error(exc)
        assert translated is not None
        raise ProbeError(translated.reason, f"monitoring {path.split('?')[0]}: {translated.message}") from exc
    document = parse_json(body)
    return status, document
