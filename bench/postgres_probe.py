"""CPU cost of one postgres probe through the agent's runner vs a bare asyncpg loop, in the same run.

Two cases: a fresh connection per run (the default) and a kept connection
(`pool: true`), each against its bare-asyncpg twin doing the same work
(connect, SELECT 1, close / SELECT 1 on a held connection). Uses the shared
PostgreSQL on 127.0.0.1:5432 (scripts/services.sh starts it).

    .venv/bin/python bench/postgres_probe.py [--count 500] [--rounds 5] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import compare, new_loop, reproduce_line
from probe_agent.config.loader import parse_config
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Status
from probe_agent.runtime.runner import ProbeHandle, run_probe

AIM = 1.2
DSN = "postgresql://postgres@127.0.0.1:5432/test"


def agent_op(pool: bool, concurrency: int):  # type: ignore[no-untyped-def]
    # One probe handle per worker: a probe never overlaps itself, so N in flight means N probes.
    probes = ", ".join(
        f"{{name: pg{i}, type: postgres, dsn: '{DSN}', pool: {str(pool).lower()}}}" for i in range(concurrency)
    )
    config = parse_config(f"probes: [{probes}]", env={})
    handles = [ProbeHandle.build(c, Redactor(config.secrets)) for c in config.probes]
    free = list(handles)

    async def op() -> None:
        handle = free.pop()
        try:
            result = await run_probe(handle)
        finally:
            free.append(handle)
        assert result.status is Status.OK, result.message

    return op, handles


async def main(args: argparse.Namespace) -> dict[str, float]:
    ratios = {}

    async def bare_fresh() -> None:
        conn = await asyncpg.connect(DSN)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()

    op, handles = agent_op(False, args.concurrency)
    ratios["fresh"] = await compare(
        "postgres probe, fresh connection per run", bare_fresh, op, args.count, args.concurrency, args.rounds
    )
    for h in handles:
        await h.aclose()

    held = [await asyncpg.connect(DSN) for _ in range(args.concurrency)]

    async def bare_pooled() -> None:
        conn = held.pop()
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            held.append(conn)

    op, handles = agent_op(True, args.concurrency)
    ratios["pool"] = await compare(
        "postgres probe, pool: true (kept connection)", bare_pooled, op, args.count * 10, args.concurrency, args.rounds
    )
    for h in handles:
        await h.aclose()
    for conn in held:
        await conn.close()
    return ratios


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    arguments = parser.parse_args()
    loop = new_loop()
    results = loop.run_until_complete(main(arguments))
    loop.close()
    for case, ratio in results.items():
        print(f"  aim ({case}): <= {AIM}x  -> {'met' if ratio <= AIM else 'NOT met'} ({ratio:.2f}x)")
    print(reproduce_line())
