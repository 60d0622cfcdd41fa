"""HTTP probe: one request to a URL, typically a liveness or readiness endpoint.

Success: a response arrives within the timeout, its status is in
`expect_status` (default 200-399, as Kubernetes), the body (read up to
`max_body_bytes`) matches `body_contains` / `body_regex`, and every
`expect_json` path equals its value. Each run opens a fresh connection, so
DNS, connect and TLS are measured the way `curl` sees them.
"""

from __future__ import annotations

import time
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, model_validator

from probe_agent.core.budget import DEFAULT_RECEIVED_BYTES
from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, ProbeConfig
from probe_agent.probes.clients.httpclient import (
    BodyMismatch,
    HttpMethod,
    JsonExpectations,
    RequestTimings,
    StatusRanges,
    check_body,
    close_shared_session,
    format_status_ranges,
    http_client_context,
    read_capped,
    shared_session,
    translate_client_error,
)
from probe_agent.probes.clients.netinfo import (
    ADDRESS_VALUES,
    TLS_VALUES,
    describe_certificate,
    literal_address,
    record_address,
    record_tls,
    unverified_certificate,
)
from probe_agent.probes.clients.tls import HANDSHAKE_CLOCK, HandshakeClock
from probe_agent.schema.fields import MAX_BYTE_SIZE, Headers, HttpUrl, Regex

PHASES = ("resolve", "connect", "tls", "processing", "transfer")


class HttpConfig(ProbeConfig):
    type: Literal["http"]
    url: HttpUrl  # http:// or https:// URL to request
    method: HttpMethod = "GET"
    headers: Headers = {}  # sent as is; values of Authorization-like headers are redacted everywhere
    body: str | None = None  # request body
    expect_status: StatusRanges = ((200, 399),)  # codes or ranges: [200, "2xx", "200-204"]
    body_contains: str | None = None  # the body must contain this text
    body_regex: Regex | None = None  # the body must match this regular expression
    expect_json: JsonExpectations = {}  # JSON path -> expected value, e.g. {"status": "ok"}
    max_body_bytes: int = Field(1_048_576, ge=0, le=MAX_BYTE_SIZE)  # a larger body fails the probe
    follow_redirects: bool = True
    tls_verify: bool = True  # verify the server certificate and host name
    ca_file: str | None = None  # CA bundle to verify against instead of the system one
    cert_file: str | None = None  # client certificate (PEM) for mutual TLS
    key_file: str | None = None

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return {"url": target}

    @model_validator(mode="after")
    def _one_authorization(self) -> HttpConfig:
        # aiohttp refuses to send both, so every run would fail: say so at load
        parts = urlsplit(self.url)
        if (parts.username or parts.password) and any(k.lower() == "authorization" for k in self.headers):
            raise ValueError("url has credentials (user:password@) and headers has Authorization: keep one of them")
        return self

    def target(self) -> str:
        return self.url

    def received_bytes_limit(self) -> int:
        # room for the largest body it accepts, its headers and its redirects' answers
        return self.max_received_bytes or DEFAULT_RECEIVED_BYTES + self.max_body_bytes


class HttpProbe(Probe[HttpConfig]):
    config_model = HttpConfig
    example = """\
- name: shop-readiness
  type: http
  url: https://shop.example.internal/health/readiness
  expect_status: [200]
  expect_json: {status: ok, checks.database: ok}
  thresholds:
    duration: {warning: 250ms, critical: 1s}
    cert_expiry_days: {warning: "< 30", critical: "< 7"}
"""
    # a 401 or 403 is an unexpected status (assertion): HTTP has no login of the probe's own
    failure_reasons = (Reason.TIMEOUT, Reason.CONNECT, Reason.TLS, Reason.PROTOCOL, Reason.ASSERTION, Reason.INTERNAL)
    translate = staticmethod(translate_client_error)
    phase_metric = "probe_http_duration_seconds"
    shown_values = ("status_code", "body_bytes", "cert_expiry_days")
    # blackbox_exporter's names, types and meanings; the first eight are there after every run,
    # 0 when the run ended before they could be known (as there).
    values = {
        "status_code": ValueSpec("probe_http_status_code", "Response HTTP status code; 0 if no response."),
        "content_length": ValueSpec(
            "probe_http_content_length", "Length of the HTTP content response (Content-Length; -1 if not sent)."
        ),
        "body_bytes": ValueSpec(
            "probe_http_uncompressed_body_length", "Length of the uncompressed response body in bytes."
        ),
        "redirects": ValueSpec("probe_http_redirects", "The number of redirects."),
        "ssl": ValueSpec("probe_http_ssl", "Indicates if SSL was used for the final redirect."),
        "http_version": ValueSpec("probe_http_version", "Returns the version of HTTP of the probe response."),
        "failed_due_to_regex": ValueSpec("probe_failed_due_to_regex", "Indicates if probe failed due to regex."),
        **ADDRESS_VALUES,
        **TLS_VALUES,
    }

    def __init__(self, config: HttpConfig):
        super().__init__(config)
        self._tls = None
        if urlsplit(config.url).scheme == "https" or config.follow_redirects:
            # Shared with every probe of the same TLS setting (a redirect may lead to https).
            self._tls = http_client_context(config.tls_verify, config.ca_file, config.cert_file, config.key_file)
        self._literal_address = literal_address(urlsplit(config.url).hostname or "")  # aiohttp does not resolve it

    @classmethod
    async def aclose_shared(cls) -> None:
        await close_shared_session()

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        clock = HandshakeClock()
        HANDSHAKE_CLOCK.set(clock)  # this run's connections copy it; the next run sets its own
        timings = RequestTimings(clock)
        values = obs.values
        for name in (
            "status_code",
            "content_length",
            "body_bytes",
            "redirects",
            "ssl",
            "http_version",
            "failed_due_to_regex",
        ):
            values[name] = 0.0
        obs.note(f"> {cfg.method} {cfg.url}")
        for key, value in cfg.headers.items():
            obs.note(f"> {key}: {value}")
        try:
            async with shared_session().request(
                cfg.method,
                cfg.url,
                ssl=self._tls if self._tls is not None else False,
                headers=cfg.headers,
                data=cfg.body,
                allow_redirects=cfg.follow_redirects,
                trace_request_ctx=timings,
            ) as response:
                headers_at = time.perf_counter()
                values["status_code"] = response.status
                values["redirects"] = len(response.history)
                values["http_version"] = (
                    response.version.major + response.version.minor / 10 if response.version else 0.0
                )
                length = response.content_length
                values["content_length"] = float(length) if length is not None else -1.0
                values["ssl"] = 1.0 if response.url.scheme == "https" else 0.0
                record_tls(clock, obs)
                if len(response.history):
                    obs.details["final_url"] = str(response.url)
                if obs.trace is not None:
                    trace_response(obs, response, clock)
                body = await read_capped(response, cfg.max_body_bytes)
                if obs.trace is not None:
                    shown = body[:TRACE_BODY_BYTES].decode("utf-8", errors="replace")
                    obs.note(
                        f"< body ({len(body)} bytes{', first ' + str(TRACE_BODY_BYTES) if len(body) > TRACE_BODY_BYTES else ''}):"
                    )
                    obs.trace.extend(f"<   {line}" for line in shown.splitlines()[:60])
                values["body_bytes"] = len(body)
                timings.add("transfer", time.perf_counter() - headers_at)
        except aiohttp.ClientConnectorCertificateError as exc:
            if obs.trace is not None:  # what was the certificate it refused?
                der = await unverified_certificate(exc.host, exc.port or 443)
                obs.note(
                    "tls: refused certificate " + describe_certificate(der) if der else "tls: no certificate to show"
                )
            raise
        finally:
            # all five, 0 for those that did not happen, as blackbox_exporter has them
            for phase in PHASES:
                obs.add_phase(phase, timings.phases.get(phase, 0.0))
            values["dns_lookup_seconds"] = timings.phases.get("resolve", 0.0)
            # as blackbox_exporter: known once the name resolved, whatever happened next
            record_address(clock.address or self._literal_address, obs)

        if not any(lo <= response.status <= hi for lo, hi in cfg.expect_status):
            raise ProbeError(
                Reason.ASSERTION,
                f"status {response.status}, expected {format_status_ranges(cfg.expect_status)}",
            )
        try:
            check_body(body, cfg.body_contains, cfg.body_regex, cfg.expect_json)
        except BodyMismatch:
            values["failed_due_to_regex"] = 1.0
            raise


TRACE_BODY_BYTES = 4096


def trace_response(obs: Observation, response: aiohttp.ClientResponse, clock: HandshakeClock) -> None:
    """Redirects, the TLS session and the response's status line and headers, for a trace."""
    for hop in response.history:
        obs.note(f"< {hop.status} {hop.reason} from {hop.url}: redirect to {hop.headers.get('Location', '?')}")
    if clock.version:
        obs.note(f"tls: {clock.version}, cipher {clock.cipher or '?'}")
        if clock.peer_cert:
            obs.note("tls: certificate " + describe_certificate(clock.peer_cert))
    version = f"HTTP/{response.version.major}.{response.version.minor}" if response.version else "HTTP"
    obs.note(f"< {version} {response.status} {response.reason or ''}".rstrip())
    for key, value in response.headers.items():
        obs.note(f"< {key}: {value}")


PROBE = HttpProbe
