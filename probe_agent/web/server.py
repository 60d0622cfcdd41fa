"""The agent's HTTP server: /metrics, /health, /health/live, /health/ready, POST /-/reload."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import ssl
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST

from probe_agent.core import jsonpath
from probe_agent.core.health import Health
from probe_agent.outputs.exposition import GZIP_LEVEL, ProbeExposition
from probe_agent.runtime.agent import Agent
from probe_agent.runtime.state import Tally
from probe_agent.web import probe_endpoint
from probe_agent.web.connlimits import ConnectionLimits, GuardedSite
from probe_agent.web.probe_endpoint import LIMITS_KEY, ProbeEndpointLimits
from probe_agent.web.webconfig import BasicAuth, WebConfig, load_web_config, server_context

AGENT_KEY = web.AppKey("agent", Agent)
# what /metrics rendered of each probe, kept between scrapes (only changed probes are rendered again)
EXPOSITION_KEY = web.AppKey("exposition", ProbeExposition)


def _wants_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


async def metrics(request: web.Request) -> web.StreamResponse:
    # Only changed probes are rendered, in short batches on the loop; joins and gzip in a thread.
    agent = request.app[AGENT_KEY]
    agent.metrics.scraped()
    compress = _wants_gzip(request)
    body = await request.app[EXPOSITION_KEY].scrape(list(agent.store.probes.values()), agent.metrics.registry, compress)
    return await _send(request, body, CONTENT_TYPE_LATEST, gzipped=compress)


WRITE_CHUNK = 1 << 20


async def _send(
    request: web.Request, body: bytes | list[bytes], content_type: str, status: int = 200, *, gzipped: bool = False
) -> web.StreamResponse:
    """Small bodies in one go; a large one (30 MB of uncompressed metrics, in pieces) a
    megabyte at a time, so that copying it into the socket's buffer never holds the loop long."""
    headers = {"Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    pieces = body if isinstance(body, list) else [body]
    length = sum(len(piece) for piece in pieces)
    if length <= WRITE_CHUNK:
        return web.Response(body=b"".join(pieces), status=status, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    await response.prepare(request)
    for piece in pieces:
        view = memoryview(piece)
        for start in range(0, len(piece), WRITE_CHUNK):
            await response.write(view[start : start + WRITE_CHUNK])
    await response.write_eof()
    return response


STARTING = {"status": "starting", "probes": []}
READY_NAMES = 100  # names of each kind /health/ready lists; "counts" has them all


BRIEF_FIELDS = ("name", "type", "critical", "health", "status", "last_run", "distorted")  # --web.health-detail=status
HEALTH_BATCH = 200  # probes turned into JSON between two turns of the loop


async def health(request: web.Request) -> web.StreamResponse:
    # 3 MB of JSON at 10,000 probes: built in batches, letting the loop go between them.
    agent = request.app[AGENT_KEY]
    if not agent.started:
        return web.json_response(STARTING, status=503)
    tally, chunks = Tally(), []
    brief = request.app[OPTIONS_KEY].health_detail == "status"
    states = list(agent.store.probes.values())
    if wanted := set(request.query.getall("probe", [])):  # /health?probe=a&probe=b: only those
        states = [s for s in states if s.config.name in wanted]
    for i, state in enumerate(states, 1):
        tally.add(state)
        view = state.to_dict()
        if brief:
            view = {k: view[k] for k in BRIEF_FIELDS}
        elif state.config.remediation is not None:
            view["remediation"] = agent.remediator.view(state.config.name, state.config.remediation.window)
        chunks.append(json.dumps(view).encode())
        if i % HEALTH_BATCH == 0:
            await asyncio.sleep(0)
    _count_discovery(agent, tally)
    status, code = tally.overall()
    compress = _wants_gzip(request)

    # the agent's own condition, when it has one: its probes' results are then partly its doing
    condition = ', "agent": {"condition": "overloaded"}' if agent.overloaded else ""
    if trouble := agent.discovery_trouble():  # sources failing: their groups run old targets, or none yet
        condition += f', "discovery": {json.dumps(trouble)}'

    def finish() -> bytes:
        body = b"".join(
            [f'{{"status": {json.dumps(status)}{condition}, "probes": ['.encode(), b", ".join(chunks), b"]}"]
        )
        return gzip.compress(body, GZIP_LEVEL) if compress else body

    return await _send(request, await asyncio.to_thread(finish), "application/json", code, gzipped=compress)


async def ready(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    if not agent.started:
        return web.json_response(STARTING, status=503)
    tally = Tally()
    for i, state in enumerate(list(agent.store.probes.values()), 1):
        tally.add(state)
        if i % (HEALTH_BATCH * 10) == 0:
            await asyncio.sleep(0)
    _count_discovery(agent, tally)
    status, code = tally.overall()
    body: dict[str, object] = {"status": status}
    counts: dict[str, int] = {}
    for health in (Health.FAILING, Health.STALE, Health.PENDING, Health.MAINTENANCE):
        # the first names of each kind, and how many there are: at 50,000 probes every
        # pending name made a multi-megabyte answer for a readiness check
        body[health.value] = tally.by_health[health][:READY_NAMES]
        counts[health.value] = len(tally.by_health[health])
    body["counts"] = counts
    if groups := agent.discovery_pending_groups():
        body["discovery_pending"] = groups
    return web.json_response(body, status=code)


def _count_discovery(agent: Agent, tally: Tally) -> None:
    """A group whose source never answered has no probes yet: nothing vouches for them, so the
    verdict is pending (503 if the group's probes are critical), never ok."""
    for group in agent.discovery_pending_groups():
        tally.add_pending(critical=agent.group_is_critical(group))


async def live(request: web.Request) -> web.Response:
    if request.app[AGENT_KEY].alive():
        return web.json_response({"status": "alive"})
    return web.json_response({"status": "stalled"}, status=503)


async def reload(request: web.Request) -> web.Response:
    if (refused := _lifecycle_refused(request)) is not None:
        return refused
    problems = await request.app[AGENT_KEY].reload()
    if problems:
        return web.json_response({"status": "rejected", "errors": problems}, status=400)
    return web.json_response({"status": "reloaded"})


def _lifecycle_refused(request: web.Request) -> web.Response | None:
    if request.app[OPTIONS_KEY].lifecycle:
        return None
    return web.json_response(
        {
            "status": "forbidden",
            "error": "lifecycle endpoints are disabled; start with --web.enable-lifecycle (SIGHUP reloads too)",
        },
        status=403,
    )


async def maintenance_list(request: web.Request) -> web.Response:
    """Every window, scheduled and ad hoc, with whether it is in effect and until when."""
    agent = request.app[AGENT_KEY]
    active = {window.name: until for window, until in agent.maintenance.active}
    windows = []
    for window in agent.maintenance.windows():
        view = window.describe() | {
            "kind": agent.maintenance.kind(window.name),
            "active": window.name in active,
        }
        if window.name in active:
            view["until"] = active[window.name].isoformat()
        windows.append(view)
    return web.json_response({"windows": windows})


MAX_MAINTENANCE_REQUEST = 64 * 1024


async def maintenance_start(request: web.Request) -> web.Response:
    if (refused := _lifecycle_refused(request)) is not None:
        return refused
    try:
        body = jsonpath.loads(await request.content.read(MAX_MAINTENANCE_REQUEST)) if request.can_read_body else {}
        if not isinstance(body, dict):
            raise ValueError('expected a JSON object such as {"probes": ["orders-db"], "duration": "30m"}')
        window = await request.app[AGENT_KEY].start_maintenance(body)
    except ValueError as exc:  # pydantic's ValidationError and json's errors are ValueErrors
        text = str(exc).splitlines()
        return web.json_response(
            {"status": "rejected", "error": "; ".join(line.strip() for line in text if line.strip())}, status=400
        )
    return web.json_response({"status": "started", "window": window.describe()}, status=201)


async def maintenance_end(request: web.Request) -> web.Response:
    if (refused := _lifecycle_refused(request)) is not None:
        return refused
    name = request.match_info["name"]
    if not await request.app[AGENT_KEY].end_maintenance(name):
        return web.json_response({"status": "not found", "error": f"no ad hoc window named {name!r}"}, status=404)
    return web.json_response({"status": "ended", "name": name})


async def index(_request: web.Request) -> web.Response:
    # relative, so that it also works behind a proxy that serves the agent under a path
    raise web.HTTPFound("status")


async def badge_svg(request: web.Request) -> web.Response:
    """An SVG badge of one probe's, or one tag's probes', status or uptime (the worst of them, and
    their runs together)."""
    from probe_agent.outputs.badges import COLOURS, badge, badge_value

    agent = request.app[AGENT_KEY]
    scope, name, kind = (request.match_info[k] for k in ("scope", "name", "kind"))
    headers = {
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "Cache-Control": "no-cache",  # a README's image must follow the probe
        "X-Content-Type-Options": "nosniff",
    }
    if scope == "probe":
        found = agent.store.probes.get(name)
        shown = badge_value([found], kind) if found is not None else None
    else:
        # a tag may hold 50,000 probes, each with a day of slots: counted in a thread, as /status joins
        states = list(agent.store.probes.values())
        shown = await asyncio.to_thread(lambda: badge_value([s for s in states if name in s.config.tags], kind))
    if shown is None:  # the name from the URL is not echoed: nothing of a stranger's text is drawn
        body = badge("probe-agent", "not found", COLOURS["not found"])
        return web.Response(body=body, status=404, content_type="image/svg+xml", headers=headers)
    value, colour = shown
    return web.Response(body=badge(name, value, colour), content_type="image/svg+xml", headers=headers)


async def status_page(request: web.Request) -> web.Response:
    from probe_agent.outputs.statuspage import CSP, render

    agent = request.app[AGENT_KEY]
    body = await render(
        agent, brief=request.app[OPTIONS_KEY].health_detail == "status", partial=request.query.get("partial") == "1"
    )
    return web.Response(
        body=body,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@dataclass
class WebOptions:
    """Who may do what on the agent's endpoints (docs/security.md)."""

    lifecycle: bool = False  # POST /-/reload; off unless --web.enable-lifecycle, as in Prometheus
    health_detail: str = "full"  # "status": /health names probes and their health, no targets or messages
    web_config_file: str | None = None
    web_config: WebConfig = field(default_factory=WebConfig)
    ssl_context: ssl.SSLContext | None = None
    auth: BasicAuth | None = None
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)  # who may hold the port, how long

    @classmethod
    def load(
        cls, lifecycle: bool, health_detail: str, web_config_file: str | None, limits: ConnectionLimits | None = None
    ) -> WebOptions:
        options = cls(lifecycle, health_detail, web_config_file, limits=limits or ConnectionLimits())
        options.reload_web_config()
        return options

    def reload_web_config(self) -> None:
        """Read --web.config.file again (SIGHUP): renewed certificates, changed users. Raises ConfigError."""
        if self.web_config_file is None:
            return
        config = load_web_config(self.web_config_file)
        if config.tls_server_config is not None:
            self.ssl_context = server_context(config.tls_server_config, self.ssl_context)
        self.auth = BasicAuth(config.basic_auth_users) if config.basic_auth_users else None
        self.web_config = config


OPTIONS_KEY = web.AppKey("options", WebOptions)
OPEN_PATHS = frozenset({"/health/live"})  # says alive or stalled, nothing more: kubelet probes need no password


@web.middleware
async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[OPTIONS_KEY].auth
    if (
        auth is not None
        and request.path not in OPEN_PATHS
        and not await auth.allows(request.headers.get("Authorization"), request.remote or "")
    ):
        return web.json_response(
            {"status": "unauthorized"}, status=401, headers={"WWW-Authenticate": 'Basic realm="probe-agent"'}
        )
    return await handler(request)


DEBUG_KEY = web.AppKey("debug_runs", asyncio.Semaphore)
DEBUG_RUNS = 2  # at once: a debug run is a probe run more, on demand


async def debug_probe(request: web.Request) -> web.Response:
    """One run of one configured probe, now, with its trace, as `check -v` prints it; never an
    arbitrary target. Redacted as every output. The run does not count in /metrics or /health."""
    from probe_agent.core.errors import did_you_mean
    from probe_agent.outputs.reports import render_table
    from probe_agent.runtime.runner import ProbeHandle, run_probe

    if request.app[OPTIONS_KEY].health_detail != "full":
        return web.Response(status=403, text="debug runs are off: the agent runs with --web.health-detail=status\n")
    agent = request.app[AGENT_KEY]
    name = request.query.get("name", "")
    config = next((p for p in agent.config.probes if p.name == name), None)
    if config is None:
        hint = did_you_mean(name, tuple(p.name for p in agent.config.probes))
        return web.Response(status=404, text=f"no probe named {name!r}{hint}; GET /debug/probe?name=NAME\n")
    runs = request.app[DEBUG_KEY]
    if runs.locked():
        return web.Response(
            status=429, text=f"{DEBUG_RUNS} debug runs are in flight already; try again\n", headers={"Retry-After": "1"}
        )
    async with runs:
        redactor = agent.config.redactor(name)
        handle = await asyncio.to_thread(ProbeHandle.build, config, redactor)  # TLS files: off the loop
        try:
            result = await run_probe(handle, agent.monitor, agent.config.loop_lag_tolerance, trace=True)
        finally:
            await handle.aclose()
    out = io.StringIO()
    render_table([result], {name: redactor.redact(config.target())}, out)
    return web.Response(text=out.getvalue())


async def blackbox_probe(request: web.Request) -> web.Response:
    """blackbox_exporter's GET /probe (probe_agent.web.probe_endpoint); off unless configured."""
    return await probe_endpoint.probe(request, request.app[AGENT_KEY])


def make_app(agent: Agent, options: WebOptions | None = None) -> web.Application:
    app = web.Application(middlewares=[basic_auth])
    app[AGENT_KEY] = agent
    app[EXPOSITION_KEY] = ProbeExposition()
    app[OPTIONS_KEY] = options or WebOptions()
    app.router.add_get("/", index)
    app.router.add_get("/status", status_page)
    app.router.add_get("/badge/{scope:probe|tag}/{name}/{kind:status|uptime}.svg", badge_svg)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/debug/probe", debug_probe)
    app.router.add_get("/probe", blackbox_probe)
    app[LIMITS_KEY] = ProbeEndpointLimits()
    app.router.add_get("/-/maintenance", maintenance_list)
    app.router.add_post("/-/maintenance", maintenance_start)
    app.router.add_delete("/-/maintenance/{name}", maintenance_end)
    app[DEBUG_KEY] = asyncio.Semaphore(DEBUG_RUNS)
    return app


def _client_gone(record: logging.LogRecord) -> bool:
    """aiohttp logs a scraper that hung up before its answer was written as an error with a
    traceback ("Cannot write to closing transport"): nothing went wrong in the agent."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, ConnectionResetError)


async def start_server(agent: Agent, host: str, port: int, options: WebOptions | None = None) -> web.AppRunner:
    options = options or WebOptions()
    server_log = logging.getLogger("aiohttp.server")
    if _client_gone not in server_log.filters:
        server_log.addFilter(_client_gone)
    limits = options.limits
    runner = web.AppRunner(
        make_app(agent, options), access_log=None, handle_signals=False, keepalive_timeout=limits.keepalive_timeout
    )
    await runner.setup()
    await GuardedSite(runner, host, port, limits, reuse_address=True, ssl_context=options.ssl_context).start()
    return runner
