"""HTTP client engines for bench/http_engines.py: one fixed-rate loop, three ways to make a request.

Run by the bench as a process of its own per round, so each is measured alone:

    .venv/bin/python -m bench.engines ENGINE URL COUNT INTERVAL SECONDS

prints "<cpu seconds> <requests done> <failures>". Every engine opens a fresh connection per
request (as the agent does: connect is measured every run), reads the whole body and checks the
status; none records anything. They are what a prober could cost, not probers:
- `aiohttp`: a ClientSession with force_close, as the agent's http probe uses it
- `curl`: libcurl's multi interface through pycurl, driven by the event loop's readers, writers
  and one timer: the agent's own engine (probe_agent/probes/clients/curlengine.py)
- `raw`: an asyncio.Protocol per connection and httptools' parser (llhttp): the floor of what
  Python on this loop can do per request
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import urlsplit

import uvloop

Get = Callable[[str], Awaitable[int]]


async def aiohttp_engine() -> tuple[Get, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))

    async def get(url: str) -> int:
        async with session.get(url) as response:
            await response.read()
            return response.status

    return get, session.close


async def curl_engine() -> tuple[Get, Callable[[], Awaitable[None]]]:
    # the agent's own engine, so the row is what the http probe will pay for libcurl
    from probe_agent.probes.clients.curlengine import CurlEngine, Exchange

    engine = CurlEngine()

    async def get(url: str) -> int:
        return (await engine.exchange(Exchange(url))).status

    async def close() -> None:
        engine.close()

    return get, close


class _OneRequest(asyncio.Protocol):
    """One request on one fresh connection, the response parsed by httptools."""

    def __init__(self, request: bytes, done: asyncio.Future[int]):
        import httptools

        self.request = request
        self.done = done
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.done.done():
            self.done.set_result(self.parser.get_status_code())
        assert self.transport is not None
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed before the response ended"))


async def raw_engine() -> tuple[Get, Callable[[], Awaitable[None]]]:
    loop = asyncio.get_running_loop()

    async def get(url: str) -> int:
        parts = urlsplit(url)
        request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
        done: asyncio.Future[int] = loop.create_future()
        await loop.create_connection(lambda: _OneRequest(request, done), parts.hostname or "", parts.port or 80)
        return await done

    async def close() -> None:
        pass

    return get, close


ENGINES = {"aiohttp": aiohttp_engine, "curl": curl_engine, "raw": raw_engine}


async def paced(engine: str, url: str, count: int, interval: float, seconds: float) -> tuple[float, int, int]:
    """`count` targets, each asked every `interval` seconds at its own phase, for `seconds`: the
    agent's pacing. Returns (CPU seconds, requests done, failures)."""
    get, close = await ENGINES[engine]()
    start = time.monotonic() + 1.0
    end = start + seconds
    done = failed = 0

    async def one(i: int) -> None:
        nonlocal done, failed
        tick = start + (i / count) * interval
        while tick < end:
            await asyncio.sleep(max(tick - time.monotonic(), 0))
            try:
                async with asyncio.timeout(5):  # a broken engine must fail its rows, not hang them
                    status = await get(f"{url}/p/{i}")
                if status != 200:
                    failed += 1
            except (OSError, TimeoutError):
                failed += 1
            done += 1
            tick += interval

    await asyncio.sleep(max(start - time.monotonic(), 0))
    cpu0 = time.process_time()
    await asyncio.gather(*(one(i) for i in range(count)))
    cpu = time.process_time() - cpu0
    await close()
    return cpu, done, failed


def main() -> None:
    engine, url, count, interval, seconds = sys.argv[1:6]
    cpu, done, failed = uvloop.run(paced(engine, url, int(count), float(interval), float(seconds)))
    print(f"{cpu} {done} {failed}")


if __name__ == "__main__":
    main()
