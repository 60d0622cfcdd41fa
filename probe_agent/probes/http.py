"""HTTP probe: one request to a URL, typically a liveness or readiness endpoint.

Success: a response arrives within the timeout, its status is in
`expect_status` (default 200-399, as Kubernetes), the body (read up to
`max_body_bytes`) matches `body_contains` / `body_regex`, and every
`expect_json` path equals its value. Each run opens a fresh connection, so
DNS, connect and TLS are measured the way `curl` sees them.
"""

from __future__ import annotations

import time
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field

from probe_agent.errors import ProbeError, Reason
from probe_agent.fields import HttpUrl, Regex
from probe_agent.httpclient import (
    HttpMethod,
    JsonExpectations,
    RequestTimings,
    StatusRanges,
    check_body,
    close_shared_session,
    format_status_ranges,
    read_capped,
    shared_session,
    translate_client_error,
)
from probe_agent.model import Observation, ValueSpec
from probe_agent.probe import Probe, ProbeConfig
from probe_agent.tls import HANDSHAKE_CLOCK, HandshakeClock, client_context


class HttpConfig(ProbeConfig):
    type: Literal["http"]
    url: HttpUrl  # http:// or https:// URL to request
    method: HttpMethod = "GET"
    headers: dict[str, str] = {}  # sent as is; values of Authorization-like headers are redacted everywhere
    body: str | None = None  # request body
    expect_status: StatusRanges = ((200, 399),)  # codes or ranges: [200, "2xx", "200-204"]
    body_contains: str | None = None  # the body must contain this text
    body_regex: Regex | None = None  # the body must match this regular expression
    expect_json: JsonExpectations = {}  # JSON path -> expected value, e.g. {"status": "ok"}
    max_body_bytes: int = Field(1_048_576, ge=0)  # a larger body fails the probe
    follow_redirects: bool = True
    tls_verify: bool = True  # verify the server certificate and host name
    ca_file: str | None = None  # CA bundle to verify against instead of the system one
    cert_file: str | None = None  # client certificate (PEM) for mutual TLS
    key_file: str | None = None

    def target(self) -> str:
        return self.url


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
    translate = staticmethod(translate_client_error)
    phase_metric = "probe_http_duration_seconds"
    values = {
        "status_code": ValueSpec("probe_http_status_code", "HTTP status code of the last response."),
        "body_bytes": ValueSpec("probe_http_content_length_bytes", "Length of the response body in bytes."),
        "redirects": ValueSpec("probe_http_redirects", "Number of redirects followed."),
        "ssl_earliest_cert_expiry": ValueSpec(
            "probe_ssl_earliest_cert_expiry", "Unix time at which the server certificate expires."
        ),
        "cert_expiry_days": ValueSpec(None, "Days until the server certificate expires (for thresholds)."),
    }

    def __init__(self, config: HttpConfig):
        super().__init__(config)
        self._tls = None
        if urlsplit(config.url).scheme == "https" or config.follow_redirects:
            # Shared with every probe of the same TLS setting (a redirect may lead to https).
            self._tls = client_context(config.tls_verify, config.ca_file, config.cert_file, config.key_file)

    @classmethod
    async def aclose_shared(cls) -> None:
        await close_shared_session()

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        clock = HandshakeClock()
        HANDSHAKE_CLOCK.set(clock)  # this run's connections copy it; the next run sets its own
        timings = RequestTimings(clock)
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
                obs.values["status_code"] = response.status
                obs.values["redirects"] = len(response.history)
                if (expiry := clock.cert_expiry()) is not None:
                    obs.values["ssl_earliest_cert_expiry"] = expiry
                    obs.values["cert_expiry_days"] = round((expiry - time.time()) / 86400, 3)
                if len(response.history):
                    obs.details["final_url"] = str(response.url)
                body = await read_capped(response, cfg.max_body_bytes)
                obs.values["body_bytes"] = len(body)
                timings.add("transfer", time.perf_counter() - headers_at)
        finally:
            for phase in ("dns", "connect", "tls", "first_byte", "transfer"):
                if phase in timings.phases:
                    obs.add_phase(phase, timings.phases[phase])

        if not any(lo <= response.status <= hi for lo, hi in cfg.expect_status):
            raise ProbeError(
                Reason.ASSERTION,
                f"status {response.status}, expected {format_status_ranges(cfg.expect_status)}",
            )
        check_body(body, cfg.body_contains, cfg.body_regex, cfg.expect_json)



PROBE = HttpProbe
