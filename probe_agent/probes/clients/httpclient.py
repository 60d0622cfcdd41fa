"""The aiohttp client pieces the synthetic, amqp and nats probe types share: one session per
loop with per-phase timings, capped body reads, and aiohttp's exceptions as a Reason. What is
checked in an answer is in httpchecks (the http probe, on libcurl, needs no aiohttp).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import weakref
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from probe_agent import USER_AGENT
from probe_agent.core.errors import ProbeError, Reason
from probe_agent.probes.clients.tls import HANDSHAKE_CLOCK, HandshakeClock, TimedSSLObject, client_context


class RequestTimings:
    """Filled by aiohttp trace callbacks during one run; sums over redirect hops."""

    __slots__ = ("clock", "connect_start", "dns_in_connect", "dns_start", "phases", "sent")

    def __init__(self, clock: HandshakeClock):
        self.dns_start = self.dns_in_connect = self.connect_start = self.sent = 0.0
        self.phases: dict[str, float] = {}
        self.clock = clock

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + max(seconds, 0.0)


async def _on_dns_start(_s: Any, ctx: Any, _p: Any) -> None:
    if isinstance(t := ctx.trace_request_ctx, RequestTimings):
        t.dns_start = time.perf_counter()


async def _on_dns_end(_s: Any, ctx: Any, _p: Any) -> None:
    if isinstance(t := ctx.trace_request_ctx, RequestTimings):
        seconds = time.perf_counter() - t.dns_start
        t.add("resolve", seconds)
        t.dns_in_connect += seconds


async def _on_connect_start(_s: Any, ctx: Any, _p: Any) -> None:
    if isinstance(t := ctx.trace_request_ctx, RequestTimings):
        t.connect_start = time.perf_counter()
        t.dns_in_connect = 0.0
        t.clock.reset()


async def _on_connect_end(_s: Any, ctx: Any, _p: Any) -> None:
    if isinstance(t := ctx.trace_request_ctx, RequestTimings):
        # aiohttp resolves the name inside connection creation: take DNS out of connect.
        clock = t.clock
        if clock.started is not None and clock.finished is not None:
            t.add("connect", clock.started - t.connect_start - t.dns_in_connect)
            t.add("tls", clock.finished - clock.started)
        else:
            t.add("connect", time.perf_counter() - t.connect_start - t.dns_in_connect)


async def _on_headers_sent(_s: Any, ctx: Any, _p: Any) -> None:
    if isinstance(t := ctx.trace_request_ctx, RequestTimings):
        t.sent = time.perf_counter()


async def _on_response(_s: Any, ctx: Any, _p: Any) -> None:
    # Fires for each redirect hop and for the final response, once headers are in.
    if isinstance(t := ctx.trace_request_ctx, RequestTimings) and t.sent:
        t.add("processing", time.perf_counter() - t.sent)
        t.sent = 0.0


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_dns_resolvehost_start.append(_on_dns_start)
    trace.on_dns_resolvehost_end.append(_on_dns_end)
    trace.on_connection_create_start.append(_on_connect_start)
    trace.on_connection_create_end.append(_on_connect_end)
    trace.on_request_headers_sent.append(_on_headers_sent)
    trace.on_request_redirect.append(_on_response)
    trace.on_request_end.append(_on_response)
    return trace


def translate_client_error(exc: BaseException) -> ProbeError | None:
    """aiohttp's exceptions -> Reason. Shared with the synthetic probe."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ProbeError(
            Reason.TLS,
            f"certificate verify failed: {getattr(exc.certificate_error, 'verify_message', None) or exc.certificate_error}",
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return ProbeError(Reason.TLS, f"TLS handshake failed: {getattr(exc.os_error, 'reason', None) or exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ProbeError(Reason.CONNECT, f"cannot resolve host {exc.host}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = exc.os_error
        detail = os.strerror(err.errno) if err.errno else (err.strerror or type(err).__name__)
        return ProbeError(Reason.CONNECT, f"cannot connect to {exc.host}:{exc.port}: {detail.lower()}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ProbeError(Reason.PROTOCOL, "server closed the connection without a complete response")
    if isinstance(exc, aiohttp.TooManyRedirects):
        return ProbeError(Reason.PROTOCOL, f"too many redirects (over {len(exc.history)})")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ProbeError(Reason.PROTOCOL, "response body was cut off or malformed")
    if isinstance(exc, aiohttp.ClientResponseError):
        return ProbeError(Reason.PROTOCOL, f"invalid HTTP response: {exc.message}")
    if isinstance(exc, aiohttp.ClientOSError):
        detail = os.strerror(exc.errno) if exc.errno else (exc.strerror or "connection error")
        return ProbeError(Reason.CONNECT, detail.lower())
    if isinstance(exc, aiohttp.ClientError):
        return ProbeError(Reason.PROTOCOL, f"{type(exc).__name__}: {exc}")
    return None


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read at most `limit` bytes of body; more fails the probe instead of eating memory."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise ProbeError(Reason.PROTOCOL, f"response body of {declared} bytes exceeds max_body_bytes {limit}")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise ProbeError(Reason.PROTOCOL, f"response body exceeds max_body_bytes {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


class AddressRecordingResolver(aiohttp.ThreadedResolver):
    """The system resolver, noting the address a run's host name resolved to in the run's
    clock (probe_ip_protocol, probe_ip_addr_hash). It runs in the request's task, so the
    context variable is the run's own."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        hosts = await super().resolve(host, port, family)
        clock = HANDSHAKE_CLOCK.get()
        if clock is not None and hosts:
            clock.address = hosts[0]["host"]
        return hosts


def http_client_context(
    verify: bool, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext:
    """The TLS context of an http-like probe. With the default settings it is aiohttp's own
    verified context, which aiohttp builds when it is imported (loading the system CA bundle:
    ~40 ms and 0.85 MB a context); it gets our SSLObject class once, which times handshakes
    only for a run that asks (tls.HANDSHAKE_CLOCK) and is a plain SSLObject otherwise."""
    shared = getattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", None)
    if verify and not (ca_file or cert_file or key_file) and isinstance(shared, ssl.SSLContext):
        if shared.sslobject_class is not TimedSSLObject:
            shared.sslobject_class = TimedSSLObject
        return shared
    return client_context(verify, ca_file, cert_file, key_file)


def make_session(ssl_context: Any, cookies: bool = False, fresh_connections: bool = True) -> aiohttp.ClientSession:
    # fresh_connections: a new connection for every request, so connect and TLS are measured
    # every run and a server that stopped accepting connections is noticed.
    connector = aiohttp.TCPConnector(
        force_close=fresh_connections,
        use_dns_cache=False,
        ssl=ssl_context,
        limit=0,
        resolver=AddressRecordingResolver(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar(),
        trace_configs=[_trace_config()],
        timeout=aiohttp.ClientTimeout(total=None),  # the runner owns the deadline
        headers={"User-Agent": USER_AGENT},
        auto_decompress=True,
    )


# One session per event loop for every http probe: a session and its connector cost ~6 kB,
# 60 MB at 10,000 probes. Sharing changes nothing that is measured: the connector opens a
# fresh connection for every request (force_close), keeps no DNS cache, and each request
# names its own TLS context. Closed by HttpProbe.aclose_shared (the agent and `check` do).
_shared_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def shared_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _shared_sessions.get(loop)
    if session is None or session.closed:
        session = _shared_sessions[loop] = make_session(None)
    return session


async def close_shared_session() -> None:
    """Close the running loop's shared session (HttpProbe.aclose_shared)."""
    session = _shared_sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()
