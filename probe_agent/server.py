"""The agent's HTTP server: /metrics, /health, /health/live, /health/ready, POST /-/reload."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from probe_agent.agent import Agent

AGENT_KEY = web.AppKey("agent", Agent)


async def metrics(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    agent.metrics.scraped()
    body = generate_latest(agent.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


STARTING = {"status": "starting", "probes": []}


async def health(request: web.Request) -> web.Response:
    if not request.app[AGENT_KEY].started:
        return web.json_response(STARTING, status=503)
    status, code, probes = request.app[AGENT_KEY].store.health()
    return web.json_response({"status": status, "probes": probes}, status=code)


async def ready(request: web.Request) -> web.Response:
    if not request.app[AGENT_KEY].started:
        return web.json_response(STARTING, status=503)
    store = request.app[AGENT_KEY].store
    status, code = store.overall()
    body: dict[str, object] = {"status": status}
    for health in ("failing", "stale", "pending"):
        body[health] = [s.config.name for s in list(store.probes.values()) if s.effective_health() == health]
    return web.json_response(body, status=code)


async def live(request: web.Request) -> web.Response:
    if request.app[AGENT_KEY].alive():
        return web.json_response({"status": "alive"})
    return web.json_response({"status": "stalled"}, status=503)


async def reload(request: web.Request) -> web.Response:
    problems = await request.app[AGENT_KEY].reload()
    if problems:
        return web.json_response({"status": "rejected", "errors": problems}, status=400)
    return web.json_response({"status": "reloaded"})


async def index(_request: web.Request) -> web.Response:
    return web.Response(
        text="probe-agent\n\n/metrics        Prometheus metrics\n/health         probe health (JSON)\n"
        "/health/live    agent liveness\n/health/ready   readiness (503 when a critical probe fails)\n",
    )


def make_app(agent: Agent) -> web.Application:
    app = web.Application()
    app[AGENT_KEY] = agent
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_post("/-/reload", reload)
    return app


async def start_server(agent: Agent, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(agent), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner
