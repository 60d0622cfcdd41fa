"""Shared fixtures. Servers are real and on loopback; see tests/helpers."""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import yaml
from aiohttp import web

from probe_agent.config.loader import parse_config
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Result
from probe_agent.probes import close_shared
from probe_agent.runtime.runner import ProbeHandle, run_probe

# --- in CI a skipped test is a failure ---------------------------------------
# Tests marked `external` need something that cannot run here (a real Neo4j):
# they may skip. Every other skip in CI means a service the suite needs was
# missing, and the run must not pass as if it had been tested.

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "external" not in report.keywords:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.helpers.agent import stop_leftovers

    stop_leftovers()  # agents a failing test did not stop: never outlive the session
    if os.environ.get("CI") == "true" and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.helpers.screens import SAVED

    for path in SAVED:
        terminalreporter.write_line(f"screenshot: {path}")
    if os.environ.get("CI") == "true" and _skipped:
        terminalreporter.write_line(f"CI: {len(_skipped)} test(s) skipped; in CI a skip is a failure:", red=True)
        for nodeid in _skipped:
            terminalreporter.write_line(f"  {nodeid}", red=True)


# --- probes ------------------------------------------------------------------

ProbeOnce = Callable[..., Awaitable[Result]]


@pytest.fixture
def probe_once() -> ProbeOnce:
    """Validate one probe definition like probes.yaml does, run it once, return the Result."""

    async def run(definition: dict[str, Any], env: dict[str, str] | None = None) -> Result:
        definition = {"name": "t", "interval": "60s", "timeout": "5s", **definition}
        config = parse_config(yaml.safe_dump({"probes": [definition]}), env=env or {})
        handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))
        try:
            return await run_probe(handle)
        finally:
            await handle.aclose()
            await close_shared()

    return run


# --- HTTP servers on loopback --------------------------------------------------

ServeApp = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Serve an aiohttp app on 127.0.0.1; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    yield serve
    for runner in runners:
        await runner.cleanup()
