"""GET /probe?module=M&target=T, as blackbox_exporter answers it: the module's template run
once on the target, its series in the body (probe_agent.schema.probe_endpoint).

Not an open proxy: off unless the probes file has `probe_endpoint`, a target must be in its
module's allow-list (else 403), and runs are bounded in number at once and per second (else
429). Every answer is counted by module and outcome; a module label is only ever a configured
module's name, so the series stay bounded whatever is asked."""

from __future__ import annotations

import asyncio
import math
import os
import time

from aiohttp import web

from probe_agent.config.discovery import fill_template
from probe_agent.config.loader import probe_from_template
from probe_agent.core.errors import ConfigError
from probe_agent.core.redact import Redactor
from probe_agent.outputs.exposition import render_run
from probe_agent.runtime.agent import Agent
from probe_agent.runtime.runner import ProbeHandle, run_probe
from probe_agent.schema.fields import parse_duration

MAX_TARGET_CHARS = 2048
# As blackbox_exporter: the run ends this long before Prometheus's scrape timeout, so an answer
# (probe_success 0) arrives before Prometheus gives up on the scrape.
SCRAPE_TIMEOUT_OFFSET = 0.5
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ProbeEndpointLimits:
    """Runs in flight and a token bucket of runs a second, both from the config as it is now."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._tokens = math.inf  # full at first: min() below makes it max_per_second
        self._refilled = time.monotonic()

    def take(self, max_concurrency: int, per_second: float) -> bool:
        now = time.monotonic()
        self._tokens = min(per_second, self._tokens + (now - self._refilled) * per_second)
        self._refilled = now
        if self.in_flight >= max_concurrency or self._tokens < 1:
            return False
        self._tokens -= 1
        self.in_flight += 1
        return True

    def give_back(self) -> None:
        self.in_flight -= 1


LIMITS_KEY = web.AppKey("probe_endpoint_limits", ProbeEndpointLimits)


def _answer(agent: Agent, module: str, outcome: str, status: int, text: str) -> web.Response:
    agent.metrics.probe_endpoint_requests.labels(module, outcome).inc()
    return web.Response(status=status, text=text)


async def probe(request: web.Request, agent: Agent) -> web.Response:
    settings = agent.config.probe_endpoint
    if settings is None:
        return _answer(agent, "", "off", 404, "the /probe endpoint is off: add probe_endpoint to the probes file\n")
    name = request.query.get("module", "")
    target = request.query.get("target", "")
    module = settings.modules.get(name)
    if module is None:
        known = ", ".join(sorted(settings.modules))
        return _answer(agent, "", "unknown_module", 400, f"unknown module {name[:64]!r} (known: {known})\n")
    if not target or len(target) > MAX_TARGET_CHARS or any(c.isspace() or not c.isprintable() for c in target):
        return _answer(agent, name, "bad_request", 400, "target: required, at most 2048 printable characters\n")
    discovered = frozenset(address for state in agent.config.discovery_sources.values() for address, _ in state.targets)
    if not module.allows(target, discovered):
        return _answer(
            agent, name, "forbidden", 403, f"module {name!r} may not probe that target: not in its targets\n"
        )
    limits = request.app[LIMITS_KEY]
    if not limits.take(settings.max_concurrency, settings.max_per_second):
        agent.metrics.probe_endpoint_requests.labels(name, "busy").inc()
        return web.Response(status=429, text="too many /probe runs at once; try again\n", headers={"Retry-After": "1"})
    try:
        return await _run(request, agent, name, target)
    finally:
        limits.give_back()


async def _run(request: web.Request, agent: Agent, name: str, target: str) -> web.Response:
    settings = agent.config.probe_endpoint
    assert settings is not None
    entry = fill_template({**settings.modules[name].probe, "name": f"probe-endpoint-{name}"}, name, target, {})
    if scrape_timeout := _scrape_timeout(request):
        budget = max(scrape_timeout - SCRAPE_TIMEOUT_OFFSET, 0.1)
        entry["timeout"] = min(_seconds(entry.get("timeout")) or 10.0, budget)
    try:
        config, secrets = probe_from_template(entry, os.environ)
    except ConfigError as exc:
        redactor = Redactor.of(agent.config.secrets)
        problems = "; ".join(redactor.redact(p) for p in exc.problems)[:1000]
        return _answer(agent, name, "bad_request", 400, f"module {name!r} cannot probe this target: {problems}\n")
    redactor = Redactor.of(secrets)
    handle = await asyncio.to_thread(ProbeHandle.build, config, redactor)  # TLS files: off the loop
    try:
        result = await run_probe(handle, agent.monitor, agent.config.loop_lag_tolerance)
    finally:
        await handle.aclose()
    agent.metrics.probe_endpoint_requests.labels(name, "ok").inc()
    return web.Response(body=render_run(config, result), headers={"Content-Type": CONTENT_TYPE})


def _scrape_timeout(request: web.Request) -> float | None:
    try:
        value = float(request.headers.get("X-Prometheus-Scrape-Timeout-Seconds", ""))
    except ValueError:
        return None
    return value if 0 < value < 3600 else None


def _seconds(value: object) -> float | None:
    try:
        return parse_duration(value) if value is not None else None
    except (TypeError, ValueError):
        return None
