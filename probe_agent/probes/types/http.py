"""HTTP probe: one request to a URL, typically a liveness or readiness endpoint.

Success: a response arrives within the timeout, its status is in
`expect_status` (default 200-399, as Kubernetes), the body (read up to
`max_body_bytes`) matches `body_contains` / `body_regex`, and every
`expect_json` path equals its value. Each run opens a fresh connection, so
DNS, connect and TLS are measured the way `curl` sees them: the request goes
through libcurl (probe_agent.probes.clients.curlengine), driven by the loop.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal
from urllib.parse import urlsplit

import pycurl
from pydantic import Field, model_validator

from probe_agent.core.budget import DEFAULT_RECEIVED_BYTES, READ_BUDGET
from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, ProbeConfig
from probe_agent.probes.clients.curlengine import (
    CannotResolve,
    CurlFailure,
    Exchange,
    Fetched,
    Progress,
    TooManyRedirects,
    close_engine,
    fetch,
    translate_failure,
)
from probe_agent.probes.clients.httpchecks import (
    BodyMismatch,
    HttpMethod,
    JsonExpectations,
    StatusRanges,
    check_body,
    format_status_ranges,
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
from probe_agent.probes.clients.tls import HandshakeClock, client_context, named_file_bytes
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
        # two credentials for one request: which one the server sees is not obvious, say so at load
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
    translate = staticmethod(translate_failure)
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
        self._files_checked = None
        if config.ca_file or config.cert_file or config.key_file:
            # parse them at load (TlsFileError names the field and what is wrong), through the
            # shared context of this setting, kept so it stays shared; libcurl gets their bytes
            self._files_checked = client_context(config.tls_verify, config.ca_file, config.cert_file, config.key_file)
        self._exchange = Exchange(
            config.url,
            method=config.method,
            headers=list(config.headers.items()),
            body=config.body.encode() if config.body is not None else None,
            max_body=config.max_body_bytes,
            verify=config.tls_verify,
            ca_blob=named_file_bytes(config.ca_file, "ca_file") if config.ca_file else None,
            cert_blob=named_file_bytes(config.cert_file, "cert_file") if config.cert_file else None,
            key_blob=named_file_bytes(config.key_file, "key_file") if config.key_file else None,
            certificates=True,  # the certificate's expiry is a value of every https run
        )
        if (address := literal_address(urlsplit(config.url).hostname or "")) is not None:
            self._exchange.addresses, self._exchange.literal = (address,), True  # nothing to resolve

    @classmethod
    async def aclose_shared(cls) -> None:
        close_engine()

    async def run(self, obs: Observation) -> None:
        cfg = self.config
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
        progress = Progress()
        try:
            fetched = await fetch(self._exchange, READ_BUDGET.get(), cfg.follow_redirects, progress)
        except (CurlFailure, TooManyRedirects, CannotResolve) as exc:
            values["redirects"] = len(progress.hops)
            if obs.trace is not None and isinstance(exc, CurlFailure) and exc.code in REFUSED_CERTIFICATE:
                await trace_refused_certificate(obs, exc.url)
            failure = translate_failure(exc, cfg.max_body_bytes)
            raise failure if failure is not None else exc from None
        finally:
            # all five, 0 for those that did not happen, as blackbox_exporter has them
            for phase in PHASES:
                obs.add_phase(phase, progress.phases.get(phase, 0.0))
            values["dns_lookup_seconds"] = progress.phases.get("resolve", 0.0)
            # as blackbox_exporter: known once the name resolved, whatever happened next
            record_address(progress.address, obs)
        answer = fetched.answer
        values["status_code"] = answer.status
        values["redirects"] = len(fetched.hops)
        values["http_version"] = answer.http_version
        length = next((v for k, v in answer.headers if k.lower() == "content-length"), None)
        values["content_length"] = float(length) if length is not None and length.isdigit() else -1.0
        values["ssl"] = 1.0 if fetched.url[:8].lower() == "https://" else 0.0
        clock = handshake_of(fetched)
        record_tls(clock, obs)
        if fetched.hops:
            obs.details["final_url"] = fetched.url
        body = answer.body
        if obs.trace is not None:
            trace_response(obs, fetched, clock)
            shown = body[:TRACE_BODY_BYTES].decode("utf-8", errors="replace")
            obs.note(
                f"< body ({len(body)} bytes{', first ' + str(TRACE_BODY_BYTES) if len(body) > TRACE_BODY_BYTES else ''}):"
            )
            obs.trace.extend(f"<   {line}" for line in shown.splitlines()[:60])
        values["body_bytes"] = len(body)

        if not any(lo <= answer.status <= hi for lo, hi in cfg.expect_status):
            raise ProbeError(
                Reason.ASSERTION,
                f"status {answer.status}, expected {format_status_ranges(cfg.expect_status)}",
            )
        try:
            check_body(body, cfg.body_contains, cfg.body_regex, cfg.expect_json)
        except BodyMismatch:
            values["failed_due_to_regex"] = 1.0
            raise


TRACE_BODY_BYTES = 4096
# libcurl's verdicts on a server's certificate, after which a trace shows what it was
REFUSED_CERTIFICATE = (pycurl.E_PEER_FAILED_VERIFICATION,)


def handshake_of(fetched: Fetched) -> HandshakeClock:
    """The last hop's TLS session in the form the TLS values are recorded from."""
    clock = HandshakeClock()
    answer = fetched.answer
    if answer.certificates:
        try:
            clock.peer_cert = ssl.PEM_cert_to_DER_cert(answer.certificates[0])
        except ValueError:
            clock.peer_cert = None
        clock.version = answer.tls_version
        clock.cipher = answer.cipher
    return clock


async def trace_refused_certificate(obs: Observation, url: str) -> None:
    """What was the certificate it refused? Fetched again, unverified, for the trace."""
    parts = urlsplit(url)
    der = await unverified_certificate(parts.hostname or "", parts.port or 443)
    obs.note("tls: refused certificate " + describe_certificate(der) if der else "tls: no certificate to show")


def trace_response(obs: Observation, fetched: Fetched, clock: HandshakeClock) -> None:
    """Redirects, the TLS session and the response's status line and headers, for a trace."""
    for hop in fetched.hops:
        said = hop.status_line.partition(" ")[2] or hop.status_line
        obs.note(f"< {said} from {hop.url}: redirect to {hop.location}")
    if clock.version:
        obs.note(f"tls: {clock.version}, cipher {clock.cipher or '?'}")
        if clock.peer_cert:
            obs.note("tls: certificate " + describe_certificate(clock.peer_cert))
    answer = fetched.answer
    obs.note(f"< {answer.status_line}".rstrip())
    for key, value in answer.headers:
        obs.note(f"< {key}: {value}")


PROBE = HttpProbe
