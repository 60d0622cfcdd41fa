"""The registry ratchet: every probe type, against targets that never stop sending, send garbage or
never answer, ends within its timeout, holds a bounded amount of memory and leaves no socket open.

The probes come from each type's own example, pointed at the hostile server: a type added
later is covered without touching this file.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from probe_agent.config.loader import parse_config
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Status
from probe_agent.probes import REGISTRY, close_shared
from probe_agent.runtime.runner import ProbeHandle, run_probe
from tests.helpers.netfaults import BlackHole, SpewServer
from tests.helpers.probe_examples import hostile_definition

TIMEOUT = 2.0
RSS_GROWTH_LIMIT = 20 * 1024 * 1024

# What a hostile server sends first, before endless random bytes.
PREFIXES = {
    "random": b"",
    "redis_bulk": b"$999999999999\r\n",  # a Redis bulk string of ~1 TB
    "amqp_frame": b"\x01\x00\x00\x7f\xff\xff\xf0",  # an AMQP method frame of ~2 GB
    "http_header": b"HTTP/1.1 200 OK\r\nX-Endless: ",  # a header line that never ends
    "http_body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n",
}


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The process's resident memory, sampled every 2 ms while the block runs."""

    def __init__(self) -> None:
        self.peak = self.start = 0
        self._done = threading.Event()

    def __enter__(self) -> PeakRss:
        self.start = self.peak = _rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def open_client_sockets(port: int) -> int:
    """This process's TCP sockets connected to 127.0.0.1:port (the client's side)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    count += 1
    return count


async def run_once(type_name: str, port: int) -> tuple[Any, float, int, int]:
    config = parse_config(yaml.safe_dump({"probes": [hostile_definition(type_name, port, TIMEOUT)]}), env={})
    handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))
    with PeakRss() as rss:
        started = time.monotonic()
        try:
            result = await run_probe(handle)
        finally:
            elapsed = time.monotonic() - started
            await handle.aclose()
            await close_shared()
    # a closed socket may take a moment to leave the table (grpc's channel closes in its threads)
    for _ in range(40):
        if not open_client_sockets(port):
            break
        await asyncio.sleep(0.05)
    return result, elapsed, rss.growth, open_client_sockets(port)


@pytest.fixture(params=sorted(PREFIXES))
def spewing(request: pytest.FixtureRequest) -> Iterator[SpewServer]:
    with SpewServer(PREFIXES[request.param]) as server:
        yield server


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
async def test_a_server_that_never_stops_sending(type_name: str, spewing: SpewServer) -> None:
    result, elapsed, growth, left_open = await run_once(type_name, spewing.port)
    assert result.status is not Status.OK, result
    assert elapsed < TIMEOUT + 1.0, f"{type_name} took {elapsed:.1f}s: {result.message}"
    assert growth < RSS_GROWTH_LIMIT, f"{type_name}: RSS grew {growth / 1e6:.0f} MB ({result.message})"
    assert left_open == 0, f"{type_name} left {left_open} socket(s) open"


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
async def test_a_server_that_never_answers(type_name: str) -> None:
    hole = BlackHole()
    try:
        result, elapsed, _growth, left_open = await run_once(type_name, hole.port)
    finally:
        hole.close()
    assert result.status is not Status.OK, result
    assert elapsed < TIMEOUT + 1.0, f"{type_name} took {elapsed:.1f}s: {result.message}"
    assert left_open == 0, f"{type_name} left {left_open} socket(s) open"


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
async def test_a_run_cancelled_mid_flight_releases_what_it_holds(type_name: str) -> None:
    # The probe contract (probe_agent.probes.base): a run may be cancelled at any await (a
    # reload removes its probe, the daemon stops); it ends at once, and what it opened is closed
    # by the end of its timeout at the latest (grpc's core keeps a connection attempt that long).
    hole = BlackHole()
    try:
        config = parse_config(yaml.safe_dump({"probes": [hostile_definition(type_name, hole.port, TIMEOUT)]}), env={})
        handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))
        run = asyncio.create_task(run_probe(handle))
        await asyncio.sleep(0.5)  # connected to the black hole, waiting for an answer
        assert not run.done(), run.result()
        run.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 2.0)
        took = time.monotonic() - started
        await handle.aclose()
        await close_shared()
        while open_client_sockets(hole.port) and time.monotonic() - started < TIMEOUT:
            await asyncio.sleep(0.05)
        left_open = open_client_sockets(hole.port)
    finally:
        hole.close()
    assert took < 1.0, f"{type_name}: the cancelled run took {took:.1f}s to end"
    assert left_open == 0, f"{type_name} left {left_open} socket(s) open after its run was cancelled"


async def test_the_budget_names_its_limit() -> None:
    # redis-py buffers a bulk string until it is complete: without the budget, one run held 2 GB
    with SpewServer(PREFIXES["redis_bulk"]) as server:
        result, _, growth, _ = await run_once("redis", server.port)
    assert result.reason == "protocol"
    assert "more than 4194304 bytes in one run (max_received_bytes)" in result.message
    assert growth < RSS_GROWTH_LIMIT


async def test_a_pooled_connection_is_budgeted_per_run() -> None:
    # against the real Redis: connecting takes ~150 bytes and a PING answer is 7, so 100 runs on
    # one connection receive twice the 400 bytes each run may; each run starts its count afresh
    config = parse_config(
        yaml.safe_dump(
            {
                "probes": [
                    {"name": "pooled", "type": "redis", "host": "127.0.0.1", "pool": True, "max_received_bytes": 400},
                ]
            }
        ),
        env={},
    )
    handle = ProbeHandle.build(config.probes[0], Redactor())
    try:
        results = [await run_probe(handle) for _ in range(100)]
    finally:
        await handle.aclose()
    assert [r.status for r in results] == [Status.OK] * 100, [r.message for r in results if r.message][:3]


async def test_failed_runs_leave_no_garbage_cycles() -> None:
    # A failed run's exception chain held the frames it passed through, and they the exceptions:
    # ~120 objects per run that only the cyclic collector frees, and that a reload's gc.freeze()
    # (runs fail while it builds) kept for good: RSS grew 1.46 MB per reload of 1,000 probes.
    import gc

    from tests.helpers.netfaults import free_port

    port = free_port()
    handles = []
    # (redis-py's and aiormq's client objects form cycles of their own, ~75 and ~14 objects per
    # run with pool: false: theirs, not the runner's; the four here make none)
    for type_name in ("http", "tcp", "postgres", "mysql"):
        config = parse_config(yaml.safe_dump({"probes": [hostile_definition(type_name, port, 1.0)]}), env={})
        handles.append(ProbeHandle.build(config.probes[0], Redactor()))
    try:
        for handle in handles:  # warm: first-use caches, imports
            await run_probe(handle)
        gc.collect()
        gc.disable()
        try:
            for _ in range(10):
                for handle in handles:
                    result = await run_probe(handle)
                    assert result.reason in ("connect", "protocol"), result
            cyclic = gc.collect()
        finally:
            gc.enable()
    finally:
        for handle in handles:
            await handle.aclose()
        await close_shared()
    assert cyclic < 30, f"{cyclic} objects in reference cycles after 40 failed runs"
