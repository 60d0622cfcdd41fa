"""The status page at 1,000 and 10,000 probes beside /health over the same states, served by
the agent's real app on loopback: wall time per request and the longest event-loop stall
while serving it (the loop is the agent's clock; the goal is under 20 ms).

    .venv/bin/python bench/status_page.py [--sizes 1000,10000] [--requests 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from aiohttp.test_utils import TestServer

from probe_agent.config.loader import no_cyclic_gc, parse_config
from probe_agent.core.errors import Reason
from probe_agent.core.loopmonitor import LoopMonitor
from probe_agent.core.results import Result, Status
from probe_agent.runtime.agent import Agent
from probe_agent.web.server import make_app


def agent_with(n: int) -> Agent:
    text = "probes:\n" + "".join(
        f"  - {{name: p{i}, type: tcp, host: 127.0.0.1, port: 1, interval: 1d}}\n" for i in range(n)
    )
    config = parse_config(text, env={})
    agent = Agent(config)
    with no_cyclic_gc():  # as the agent builds a config: frozen out of full collections
        agent.store.probes = agent.store.plan_config(config)
    agent.started = True
    for i, name in enumerate(agent.store.probes):
        failing = i % 10 == 0  # a tenth failing, with a message and an incident each
        agent.store.record(
            Result(
                name,
                "tcp",
                Status.CRITICAL if failing else Status.OK,
                Reason.CONNECT if failing else None,
                "connection refused" if failing else "",
                0.001,
                time.time(),
                {},
                {},
                {},
            )
        )
    return agent


async def measure(n: int, requests: int) -> dict[str, tuple[float, float, int]]:
    agent = agent_with(n)
    monitor = LoopMonitor(tick=0.002)
    monitor.start()
    server = TestServer(make_app(agent), host="127.0.0.1")
    await server.start_server()

    def fetch(path: str) -> int:  # the client in a thread: only the agent's work shows on the loop
        with urllib.request.urlopen(str(server.make_url(path)), timeout=60) as response:
            return len(response.read())

    found = {}
    try:
        for path in ("/health", "/status"):
            walls, stalls, size = [], [], 0
            for _ in range(requests):
                await asyncio.sleep(0.05)
                started = time.monotonic()
                size = await asyncio.to_thread(fetch, path)
                walls.append(time.monotonic() - started)
                stalls.append(monitor.lag_during(started))
            found[path] = (statistics.median(walls), max(stalls), size)
    finally:
        await server.close()
        monitor.stop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    print(f"status page bench: {args.requests} requests each, median wall and longest loop stall")
    print(" probes  path        wall ms  max stall ms   size KB  wall vs /health")
    for n in (int(size) for size in args.sizes.split(",")):
        found = asyncio.run(measure(n, args.requests))
        health_wall = found["/health"][0]
        for path, (wall, stall, size) in found.items():
            print(
                f"{n:7d}  {path:10s} {wall * 1000:8.1f}  {stall * 1000:12.1f}  {size / 1000:8.0f}  {wall / health_wall:6.2f}x"
            )
    print("goal: longest stall < 20 ms")
    print(f"reproduce: .venv/bin/python bench/status_page.py --sizes {args.sizes} --requests {args.requests}")


if __name__ == "__main__":
    main()
