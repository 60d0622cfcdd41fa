"""Limits on who may hold the agent's own port, and for how long: a client of /metrics must never
be able to take file descriptors from the probes or time from the scrapers.

- At most `max_connections` at once. One more evicts the oldest connection that has not yet
  sent a whole request (an idle or slow-header client: what an attacker holds), so a scraper
  that asks at once is always served; only when every connection is a real client is the new
  one closed as soon as it is accepted.
- A request's headers must arrive within `header_timeout` of its first byte, or of the
  connection's start (slowloris: a request that never completes holds its socket for nothing).
- TLS handshakes get the same deadline; idle keep-alive connections close after
  `keepalive_timeout` (aiohttp's own timer, set by the caller).
- The soft limit on open files is raised to the hard one at start (`raise_fd_limit`): a container
  often starts with 1,024, which a few hundred probes and a few idle clients share.

The guard sits in front of aiohttp's protocol, as probe_agent.core.budget does for probe clients.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger("probe_agent")

HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 256
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0  # aiohttp's default, as Prometheus's idle connections expect


class _Guarded(asyncio.Protocol):
    """aiohttp's RequestHandler behind a deadline for headers and a share of the connection cap."""

    def __init__(self, inner: Any, guard: GuardedSite):
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.in_headers = False
        self.accepted = False  # within max_connections: handed to aiohttp
        self.tail = b""  # the last bytes seen, for a header end split across reads

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _arm(self) -> None:
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.guard.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _too_slow(self) -> None:
        self.timer = None
        self.guard.slow_requests += 1
        if self.transport is not None:
            self.transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        guard = self.guard
        guard.open += 1
        if guard.open > guard.limits.max_connections:
            if guard.waiting:
                oldest = next(iter(guard.waiting))
                del guard.waiting[oldest]
                guard.evicted += 1
                if oldest.transport is not None:
                    oldest.transport.abort()
            else:
                guard.refused += 1
                transport.abort()  # type: ignore[attr-defined]
                return
        self.accepted = True
        guard.waiting[self] = None
        self._arm()  # the first request's headers are due from now
        self.in_headers = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.accepted:
            return
        if not self.in_headers:
            self.in_headers = True
            self._arm()
        seen = self.tail + data
        if HEADER_END in seen:
            self.in_headers = False
            self._disarm()
            self.guard.waiting.pop(self, None)  # a real client now: not evicted for newcomers
        self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.accepted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.open -= 1
        self.guard.waiting.pop(self, None)
        if self.accepted:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.accepted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.accepted:
            self.inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections are capped and must send their headers in time."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: ConnectionLimits, **kwargs: Any):
        super().__init__(runner, host, port, **kwargs)
        self.limits = limits
        self.open = 0
        self.refused = 0  # connections closed at once: over max_connections, none to evict
        self.evicted = 0  # connections closed for a newcomer: no whole request yet
        self.waiting: dict[_Guarded, None] = {}  # connections without a whole request yet, oldest first
        self.slow_requests = 0  # connections closed: headers not complete within header_timeout

    def _factory(self) -> Callable[[], _Guarded]:
        server = self._runner.server
        assert server is not None
        return lambda: _Guarded(server(), self)

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory(),
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self.limits.header_timeout if self._ssl_context else None,
            backlog=max(self._backlog, 1024),  # a burst of connects waits in the kernel, not refused
            reuse_address=self._reuse_address,
        )


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one; (soft before, soft now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, target
