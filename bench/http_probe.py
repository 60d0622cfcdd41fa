"""CPU cost of one HTTP probe through the agent's runner vs a bare aiohttp loop, in the same run.

Both open a fresh connection per request to the demo shop's liveness
endpoint, served by a separate process so only the client's CPU is counted.
The figure that matters is the ratio; absolute times depend on the machine.

    .venv/bin/python bench/http_probe.py [--count 2000] [--rounds 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import compare, new_loop, reproduce_line
from probe_agent.config.loader import parse_config
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Status
from probe_agent.probes import close_shared
from probe_agent.runtime.runner import ProbeHandle, run_probe
from tests.helpers.processes import demo_shop

AIM = 1.3


async def main(args: argparse.Namespace, url: str) -> float:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    async def bare() -> None:
        async with session.get(url) as response:
            await response.read()
            assert response.status == 200

    config = parse_config(f"probes: [{{name: bench, type: http, url: '{url}'}}]", env={})
    handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))

    async def agent() -> None:
        result = await run_probe(handle)
        assert result.status is Status.OK, result.message

    try:
        return await compare(
            "http probe, fresh connection per request", bare, agent, args.count, args.concurrency, args.rounds
        )
    finally:
        await session.close()
        await handle.aclose()
        await close_shared()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    with demo_shop() as shop:
        loop = new_loop()
        ratio = loop.run_until_complete(main(arguments, f"{shop}/health/liveness"))
        loop.close()
    print(f"  aim      : <= {AIM}x  -> {'met' if ratio <= AIM else 'NOT met'}")
    print(reproduce_line())
