"""Synthetic transaction probe: a business flow (signup, checkout) driven step by step over HTTP.

Success: every step answers within its time with the expected status and body,
and every extraction finds its value. Steps share a cookie jar and variables:
values extracted by earlier steps, per-run built-ins ({{uuid}}, {{random}},
{{timestamp}}) for fresh test data, and ${VAR} secrets from the environment.
`cleanup` steps always run, after a failure too, within `cleanup_timeout`
reserved out of the probe's timeout; their failure is reported apart and never
hides the flow's own. Every request carries a marker header so the application
can keep synthetic traffic out of its business metrics.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urljoin

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, model_validator

from probe_agent.core import jsonpath
from probe_agent.core.budget import DEFAULT_RECEIVED_BYTES
from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.redact import Redactor, is_sensitive_name
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.core.units import duration_text
from probe_agent.probes.base import Probe, ProbeConfig
from probe_agent.probes.clients.httpchecks import (
    HttpMethod,
    JsonExpectations,
    StatusRanges,
    check_body,
    format_status_ranges,
    parse_json,
)
from probe_agent.probes.clients.httpclient import http_client_context, make_session, read_capped, translate_client_error
from probe_agent.schema.fields import MAX_BYTE_SIZE, Duration, Headers, HttpUrl, Regex, Threshold

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BUILTINS = ("uuid", "random", "timestamp")
DEFAULT_MARKER = {"X-Synthetic-Probe": "probe-agent"}
TRACE_BODY_CHARS = 1024


class Extract(BaseModel):
    """Where a variable comes from: exactly one of json, regex, header, cookie."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    json_path: str | None = Field(None, alias="json")  # JSON path in the response body
    regex: Regex | None = None  # first group (or the whole match) in the body
    header: str | None = None  # response header
    cookie: str | None = None  # cookie set by the response
    bearer: bool = False  # send `Authorization: Bearer <value>` on every later request
    secret: bool = False  # mask the value in every output (bearer, cookie and secret-like names always are)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"json": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_source(self) -> Extract:
        sources = [s for s in (self.json_path, self.regex, self.header, self.cookie) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of json, regex, header, cookie")
        if self.json_path is not None:
            jsonpath.parse_path(self.json_path)
        return self


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    method: HttpMethod = "GET"
    path: str | None = None  # joined to the flow's base_url
    url: str | None = None  # a full URL instead of path
    headers: Headers = {}
    query: dict[str, str] = {}
    json_body: Any = Field(None, alias="json")  # JSON request body
    form: dict[str, str] | None = None  # form-encoded request body
    body: str | None = None  # raw request body
    expect_status: StatusRanges = ((200, 399),)
    body_contains: str | None = None
    body_regex: Regex | None = None
    expect_json: JsonExpectations = {}  # JSON path -> expected value (templates allowed)
    extract: dict[str, Extract] = {}  # variable name -> where to find it
    requires: list[str] = []  # skip this step unless these variables are set (for cleanup)
    thresholds: dict[Literal["duration"], Threshold] = {}  # this step's latency limits
    timeout: Duration | None = None  # this step alone; the flow's deadline applies anyway

    @model_validator(mode="after")
    def _target_and_body(self) -> Step:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path and url")
        if sum(x is not None for x in (self.json_body, self.form, self.body)) > 1:
            raise ValueError("give at most one of json, form and body")
        return self


class SyntheticConfig(ProbeConfig):
    type: Literal["synthetic"]
    base_url: HttpUrl | None = None  # steps' paths are joined to it
    variables: dict[str, str] = {}  # fixed variables, e.g. a password from ${VAR}
    # variables whose values are masked everywhere; those with secret-like names always are
    secret_variables: list[str] = []
    marker: Headers = DEFAULT_MARKER  # headers on every request; {} turns it off
    steps: list[Step] = Field(min_length=1)
    cleanup: list[Step] = []  # always run, also after a failed step
    cleanup_timeout: Duration | None = None  # reserved out of timeout for cleanup; default timeout/3, at most 5s
    max_body_bytes: int = Field(1_048_576, ge=0, le=MAX_BYTE_SIZE)
    tls_verify: bool = True
    ca_file: str | None = None

    def received_bytes_limit(self) -> int:
        # every step may read a body of up to max_body_bytes
        steps = len(self.steps) + len(self.cleanup)
        return self.max_received_bytes or DEFAULT_RECEIVED_BYTES + steps * self.max_body_bytes

    def duration_limits(self) -> tuple[float, ...]:
        return tuple(
            end
            for step in (*self.steps, *self.cleanup)
            for threshold in (step.thresholds.get("duration"),)
            if threshold is not None
            for limit in (threshold.warning, threshold.critical)
            if limit is not None
            for end in limit.ends()
        )

    def phase_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in (*self.steps, *self.cleanup))

    @classmethod
    def default_thresholds(cls, raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        # A cleanup that fails leaves test data behind: worth a warning unless told otherwise.
        return {"cleanup_failures": {"warning": "> 0"}} if raw.get("cleanup") else {}

    @model_validator(mode="after")
    def _checks(self) -> SyntheticConfig:
        if self.cleanup and self.cleanup_budget >= self.timeout:
            raise ValueError(
                f"cleanup_timeout: {self.cleanup_budget:g}s must be shorter than timeout ({self.timeout:g}s)"
            )
        names = [s.name for s in [*self.steps, *self.cleanup]]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"steps: duplicate step names {duplicates}")
        for step in [*self.steps, *self.cleanup]:
            if step.path is not None and self.base_url is None:
                raise ValueError(f"base_url: needed by step {step.name!r}, which gives a path")
        # Every {{variable}} must be known by the time its step runs.
        for name, value in self.variables.items():
            if unknown := sorted(_templates(value) - set(BUILTINS)):
                raise ValueError(
                    f"variables.{name}: may use only the built-ins {', '.join(BUILTINS)}, not {{{{{unknown[0]}}}}}"
                )
        known = set(BUILTINS) | set(self.variables)
        for index, step in enumerate(self.steps):
            _check_variables(step, known, f"steps[{index}]")
            known |= set(step.extract)
        extracted = known
        for index, step in enumerate(self.cleanup):
            # cleanup may use anything the flow extracts: a step whose variables are missing is skipped
            _check_variables(step, extracted, f"cleanup[{index}]")
            extracted |= set(step.extract)
        return self

    @property
    def cleanup_budget(self) -> float:
        if self.cleanup_timeout is not None:
            return self.cleanup_timeout
        return min(5.0, self.timeout / 3)

    def target(self) -> str:
        return self.base_url or (self.steps[0].url or "")


def _templates(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(TEMPLATE.findall(value))
    if isinstance(value, dict):
        return set().union(*(_templates(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_templates(v) for v in value)) if value else set()
    return set()


def _step_templates(step: Step) -> set[str]:
    parts = (step.path, step.url, step.headers, step.query, step.json_body, step.form, step.body, step.expect_json)
    return _templates(list(parts))


def _check_variables(step: Step, known: set[str], where: str) -> None:
    unknown = sorted(_step_templates(step) - known)
    if unknown:
        raise ValueError(
            f"{where}: step {step.name!r} uses undefined variable {{{{{unknown[0]}}}}}"
            f" (defined at that point: {', '.join(sorted(known))})"
        )


def render(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return TEMPLATE.sub(lambda m: variables[m.group(1)], value)
    if isinstance(value, dict):
        return {render(k, variables): render(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, variables) for v in value]
    return value


class FlowRun:
    """State of one run of a flow: variables, auth header, secrets seen, per-step results."""

    def __init__(self, config: SyntheticConfig, session: aiohttp.ClientSession, obs: Observation):
        self.config, self.session, self.obs = config, session, obs
        self.variables: dict[str, str] = {
            "uuid": str(uuid.uuid4()),
            "random": secrets.token_hex(6),
            "timestamp": str(int(time.time())),
        }
        # Fixed variables may be built from the built-ins: `probe+{{uuid}}@example.test`.
        for name, value in config.variables.items():
            self.variables[name] = render(value, self.variables)
        self.auth: dict[str, str] = {}
        # Values this run learned that must not leave it: tokens, cookies, sensitive extractions.
        self.secrets: set[str] = {
            v for k, v in config.variables.items() if (is_sensitive_name(k) or k in config.secret_variables) and v
        }

    def fail(self, step: Step, reason: Reason, message: str) -> ProbeError:
        return ProbeError(reason, Redactor(self.secrets).redact(f"step {step.name!r}: {message}"))

    async def run_step(self, step: Step) -> None:
        cfg = self.config
        v = self.variables
        url = render(step.url, v) if step.url else urljoin(cfg.base_url or "", render(step.path, v))
        headers = {**cfg.marker, **self.auth, **render(step.headers, v)}
        self.secrets.update(val for key, val in headers.items() if is_sensitive_name(key) and val)
        kwargs: dict[str, Any] = {"headers": headers, "params": render(step.query, v) or None}
        if step.json_body is not None:
            kwargs["json"] = render(step.json_body, v)
        elif step.form is not None:
            kwargs["data"] = render(step.form, v)
        elif step.body is not None:
            kwargs["data"] = render(step.body, v)
        self.obs.note(f"step {step.name!r}: > {step.method} {url}")
        if self.obs.trace is not None:
            sent = kwargs.get("json", kwargs.get("data"))
            if sent is not None:
                self.obs.note(
                    f"step {step.name!r}: > body {json.dumps(sent)[:TRACE_BODY_CHARS] if not isinstance(sent, str) else sent[:TRACE_BODY_CHARS]}"
                )
        start = time.perf_counter()
        try:
            async with asyncio.timeout(step.timeout):
                async with self.session.request(step.method, url, allow_redirects=True, **kwargs) as response:
                    body = await read_capped(response, cfg.max_body_bytes)
                    self.obs.note(
                        f"step {step.name!r}: < {response.status} {response.reason or ''}, "
                        f"{len(body)} bytes in {(time.perf_counter() - start) * 1000:.1f} ms"
                    )
                    if self.obs.trace is not None and body:
                        self.obs.note(
                            f"step {step.name!r}: < body {body[:TRACE_BODY_CHARS].decode('utf-8', errors='replace')}"
                        )
        except ProbeError as exc:
            raise self.fail(step, exc.reason, exc.message) from exc
        except TimeoutError:
            raise self.fail(step, Reason.TIMEOUT, f"no answer within {step.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            translated = translate_client_error(exc)
            assert translated is not None
            raise self.fail(step, translated.reason, translated.message) from exc
        finally:
            self.obs.add_phase(step.name, time.perf_counter() - start)
        for cookie in response.cookies.values():
            self.secrets.add(cookie.value)
        self._check(step, response, body)
        self._extract(step, response, body)
        self._latency(step)

    def _check(self, step: Step, response: aiohttp.ClientResponse, body: bytes) -> None:
        if not any(lo <= response.status <= hi for lo, hi in step.expect_status):
            raise self.fail(
                step, Reason.ASSERTION, f"status {response.status}, expected {format_status_ranges(step.expect_status)}"
            )
        try:
            check_body(body, step.body_contains, step.body_regex, render(step.expect_json, self.variables))
        except ProbeError as exc:
            raise self.fail(step, exc.reason, exc.message) from None

    def _extract(self, step: Step, response: aiohttp.ClientResponse, body: bytes) -> None:
        document: Any = None
        for name, how in step.extract.items():
            value: Any = None
            if how.json_path is not None:
                if document is None:
                    try:
                        document = parse_json(body)
                    except ProbeError as exc:
                        raise self.fail(step, exc.reason, f"cannot extract {name}: {exc.message}") from None
                try:
                    value = jsonpath.lookup(document, how.json_path)
                except jsonpath.PathNotFound:
                    raise self.fail(
                        step, Reason.ASSERTION, f"cannot extract {name}: JSON path {how.json_path} not found"
                    ) from None
                value = value if isinstance(value, str) else json.dumps(value)
            elif how.regex is not None:
                match = re.search(how.regex, body.decode("utf-8", errors="replace"))
                if match is None:
                    raise self.fail(step, Reason.ASSERTION, f"cannot extract {name}: body does not match /{how.regex}/")
                value = match.group(1) if match.groups() else match.group(0)
            elif how.header is not None:
                value = response.headers.get(how.header)
                if value is None:
                    raise self.fail(step, Reason.ASSERTION, f"cannot extract {name}: no {how.header} header")
            else:
                morsel = response.cookies.get(how.cookie or "")
                if morsel is None:
                    raise self.fail(step, Reason.ASSERTION, f"cannot extract {name}: no cookie {how.cookie}")
                value = morsel.value
            self.variables[name] = value
            if how.bearer:
                self.auth["Authorization"] = f"Bearer {value}"
            if how.bearer or how.cookie or how.secret or is_sensitive_name(name):
                self.secrets.add(value)

    def _latency(self, step: Step) -> None:
        limits = step.thresholds.get("duration")
        seconds = self.obs.phases[step.name]
        if limits is None:
            return
        if limits.critical is not None and limits.critical.breached_by(seconds):
            limit = limits.critical
            raise self.fail(
                step,
                Reason.ASSERTION,
                f"took {duration_text(seconds)}, limit {limit.describe(duration_text)} (critical)",
            )
        if limits.warning is not None and limits.warning.breached_by(seconds):
            limit = limits.warning
            self.obs.warnings.append(
                f"step {step.name!r}: took {duration_text(seconds)}, limit {limit.describe(duration_text)}"
            )


class SyntheticProbe(Probe[SyntheticConfig]):
    config_model = SyntheticConfig
    example = """\
- name: signup-flow
  type: synthetic
  base_url: https://shop.example.internal
  variables:
    email: probe+{{uuid}}@example.test
  steps:
    - {name: signup, method: POST, path: /api/signup, json: {email: "{{email}}"}, expect_status: [201], extract: {user_id: id}}
    - {name: profile, path: "/api/users/{{user_id}}", expect_json: {email: "{{email}}"}}
  cleanup:
    - {name: delete, method: DELETE, path: "/api/users/{{user_id}}", requires: [user_id], expect_status: [204]}
"""
    phase_metric = "probe_step_duration_seconds"
    shown_values = ("steps_passed", "cleanup_failures")
    phase_label = "step"
    phase_histogram = "probe_step_run_duration_seconds"
    values = {
        "steps_passed": ValueSpec("probe_synthetic_steps_passed", "Steps of the flow that passed in the last run."),
        "cleanup_failures": ValueSpec(
            "probe_synthetic_cleanup_failures", "Cleanup steps that failed in the last run (test data left behind)."
        ),
    }

    def __init__(self, config: SyntheticConfig):
        super().__init__(config)
        self._tls = http_client_context(config.tls_verify, config.ca_file, None, None)

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        # One session per run: its own cookie jar, keep-alive within the run like a browser.
        async with make_session(self._tls, cookies=True, fresh_connections=False) as session:
            flow = FlowRun(cfg, session, obs)
            obs.values["steps_passed"] = 0
            failure: BaseException | None = None
            current = cfg.steps[0]
            try:
                async with asyncio.timeout(cfg.timeout - cfg.cleanup_budget if cfg.cleanup else None):
                    for step in cfg.steps:
                        current = step
                        await flow.run_step(step)
                        obs.values["steps_passed"] += 1
            except TimeoutError:
                budget = cfg.timeout - cfg.cleanup_budget
                failure = flow.fail(
                    current,
                    Reason.TIMEOUT,
                    f"no answer within the flow's {budget:g}s ({cfg.cleanup_budget:g}s kept for cleanup)",
                )
            except Exception as exc:  # noqa: BLE001 - reported after cleanup
                failure = exc
            if cfg.cleanup:
                await self._cleanup(flow, obs)
            if obs.trace:
                # what the flow learned at run time (tokens, cookies) is secret in its trace too
                redact = Redactor(flow.secrets).redact
                obs.trace[:] = [redact(line) for line in obs.trace]
            if failure is not None:
                raise failure

    async def _cleanup(self, flow: FlowRun, obs: Observation) -> None:
        problems: list[str] = []
        try:
            async with asyncio.timeout(self.config.cleanup_budget):
                for step in self.config.cleanup:
                    missing = sorted((set(step.requires) | _step_templates(step)) - set(flow.variables))
                    if missing:
                        obs.details[f"cleanup {step.name}"] = f"skipped: {', '.join(missing)} not set"
                        continue
                    try:
                        await flow.run_step(step)
                    except ProbeError as exc:
                        problems.append(exc.message)
        except TimeoutError:
            problems.append(f"cleanup did not finish within {self.config.cleanup_budget:g}s")
        obs.values["cleanup_failures"] = len(problems)
        if problems:
            obs.details["cleanup"] = "; ".join(problems)


PROBE = SyntheticProbe
