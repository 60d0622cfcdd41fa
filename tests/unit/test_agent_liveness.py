"""/health/live reflects the scheduler: 200 while its loops run, 503 once one has died."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from probe_agent.agent import Agent
from probe_agent.config import parse_config
from probe_agent.server import make_app


async def test_live_turns_503_when_a_probe_loop_dies() -> None:
    config = parse_config("probes: [{name: a, type: tcp, host: 127.0.0.1, port: 9, interval: 1s, timeout: 500ms}]", env={})
    agent = Agent(config, grace=1)
    await agent.start()
    client = TestClient(TestServer(make_app(agent), host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.get("/health/live")).status == 200
        # a scheduler loop that ends (a bug, a cancelled task) means probes silently stopped
        task = next(iter(agent._scheduler._tasks.values()))  # type: ignore[union-attr]
        task.cancel()
        await asyncio.sleep(0)
        response = await client.get("/health/live")
        assert response.status == 503 and (await response.json()) == {"status": "stalled"}
    finally:
        await client.close()
        await agent.stop()
