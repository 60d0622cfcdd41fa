"""The agent's HTTP server: /metrics, /health, /health/live, /health/ready, POST /-/reload."""

from __future__ import annotations

from aiohttp import web
import asyncio
import gzip
import json

from prometheus_client import CONTENT_TYPE_LATEST

from probe_agent.agent import Agent
from probe_agent.exposition import GZIP_LEVEL
from probe_agent.state import Health, Tally

AGENT_KEY = web.AppKey("agent", Agent)


def _wants_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


async def metrics(request: web.Request) -> web.StreamResponse:
    # The loop only copies the list of states; rendering and gzip run in a worker thread.
    agent = request.app[AGENT_KEY]
    agent.metrics.scraped()
    compress = _wants_gzip(request)
    body = await agent.exposition.scrape(list(agent.store.probes.values()), agent.metrics.registry, compress)
    headers = {"Content-Type": CONTENT_TYPE_LATEST}
    if compress:
        headers["Content-Encoding"] = "gzip"
    return await _send(request, body, headers)


WRITE_CHUNK = 1 << 20


async def _send(request: web.Request, body: bytes, headers: dict[str, str], status: int = 200) -> web.StreamResponse:
    """Small bodies in one go; a large one (20 MB of uncompressed metrics) a megabyte at a time,
    so that copying it into the socket's buffer never holds the loop for long."""
    if len(body) <= WRITE_CHUNK:
        return web.Response(body=body, status=status, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    for start in range(0, len(body), WRITE_CHUNK):
        await response.write(view[start : start + WRITE_CHUNK])
    await response.write_eof()
    return response


STARTING = {"status": "starting", "probes": []}


HEALTH_BATCH = 200  # probes turned into JSON between two turns of the loop


async def health(request: web.Request) -> web.StreamResponse:
    # 3 MB of JSON at 10,000 probes: built in batches, letting the loop go between them.
    agent = request.app[AGENT_KEY]
    if not agent.started:
        return web.json_response(STARTING, status=503)
    tally, chunks = Tally(), []
    states = list(agent.store.probes.values())
    if wanted := request.query.getall("probe", []):  # /health?probe=a&probe=b: only those
        states = [s for s in states if s.config.name in wanted]
    for i, state in enumerate(states, 1):
        tally.add(state)
        chunks.append(json.dumps(state.to_dict()).encode())
        if i % HEALTH_BATCH == 0:
            await asyncio.sleep(0)
    status, code = tally.overall()
    compress = _wants_gzip(request)

    def finish() -> bytes:
        body = b"".join([f'{{"status": {json.dumps(status)}, "probes": ['.encode(), b", ".join(chunks), b"]}"])
        return gzip.compress(body, GZIP_LEVEL) if compress else body

    headers = {"Content-Type": "application/json"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    return await _send(request, await asyncio.to_thread(finish), headers, code)


async def ready(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    if not agent.started:
        return web.json_response(STARTING, status=503)
    tally = Tally()
    for i, state in enumerate(list(agent.store.probes.values()), 1):
        tally.add(state)
        if i % (HEALTH_BATCH * 10) == 0:
            await asyncio.sleep(0)
    status, code = tally.overall()
    body: dict[str, object] = {"status": status}
    for health in (Health.FAILING, Health.STALE, Health.PENDING):
        body[health.value] = tally.by_health[health]
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
