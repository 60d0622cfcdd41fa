"""The byte budget: how much one probe run may receive from its target, enforced where bytes arrive.

Every client library a probe type uses (aiohttp, asyncpg, aiomysql, redis-py, aiormq, nats-py,
the neo4j driver, asyncio streams) opens its connections through the running event loop. So the
budget sits there, once for all types and any added later: while a run's budget is set in the
context (READ_BUDGET), every connection the loop opens for it gets a protocol in front of the
library's that counts what arrives (after TLS) before the library sees it. The byte that would
exceed the budget is never handed on: the connection is aborted and the run's deadline is moved
to now, so a server that streams without end costs at most one budget of memory and ends the run
at once, as a failed run with reason `protocol` that names the limit (probe_agent.runtime.runner).

A pooled connection (`pool: true`) outlives a run: it keeps the budget of the probe it belongs
to, which every run resets. Connections opened outside a probe run (the agent's own server,
remediation webhooks) are not counted here; they have limits of their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any

DEFAULT_RECEIVED_BYTES = 4 * 1024 * 1024  # enough for any protocol's answer to a probe (fields.ByteSize caps a setting)


class ReceiveBudgetExceeded(ConnectionAbortedError):
    """The connection was cut because the run's byte budget was spent."""


class ReadBudget:
    """Bytes one run of one probe may receive, over all its connections."""

    __slots__ = ("deadline", "exceeded", "last_byte", "limit", "used")

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.exceeded = False
        self.deadline: asyncio.Timeout | None = None  # the run's, moved to now when the budget is spent
        # perf_counter() when the loop last handed this run bytes from its target (0: none yet).
        # The loop reads the socket in one iteration and wakes the coroutine waiting for the bytes
        # in a later one: on a busy loop, the end of a run seen from the coroutine is that much
        # later than the answer (runtime.runner measures a run's duration up to this instead).
        self.last_byte = 0.0

    def start(self, deadline: asyncio.Timeout | None) -> None:
        """A new run: nothing received yet."""
        self.used = 0
        self.exceeded = False
        self.deadline = deadline
        self.last_byte = 0.0

    def take(self, count: int) -> bool:
        """Count `count` bytes that arrived; False once they go past the limit."""
        self.used += count
        if self.used <= self.limit:
            return True
        if not self.exceeded:
            self.exceeded = True
            deadline, self.deadline = self.deadline, None
            if deadline is not None and deadline.when() is not None:
                # end the run now: a library may retry or wait on other things after its socket is cut
                deadline.reschedule(asyncio.get_running_loop().time())
        return False


# The budget of the probe run that is opening a connection, if any.
READ_BUDGET: contextvars.ContextVar[ReadBudget | None] = contextvars.ContextVar("read_budget", default=None)


class _Counting(asyncio.Protocol):
    """In front of a library's protocol: count, cut past the budget, hand everything else on."""

    def __init__(self, inner: Any, budget: ReadBudget):
        self.inner = inner
        self.budget = budget
        self.transport: asyncio.BaseTransport | None = None
        self.cut = False

    def __getattr__(self, name: str) -> Any:  # what a library reads off transport.get_protocol()
        return getattr(self.inner, name)

    def _spend(self, count: int) -> bool:
        if self.cut:
            return False
        if self.budget.take(count):
            return True
        self.cut = True
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]
        return False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._spend(len(data)):
            self.budget.last_byte = time.perf_counter()
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self.cut else self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.cut:
            exc = ReceiveBudgetExceeded(f"received more than {self.budget.limit} bytes")
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _CountingBuffered(_Counting, asyncio.BufferedProtocol):
    def get_buffer(self, sizehint: int) -> Any:
        return self.inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self._spend(nbytes):
            self.budget.last_byte = time.perf_counter()
            self.inner.buffer_updated(nbytes)


def _wrap(inner: Any, budget: ReadBudget) -> _Counting:
    if isinstance(inner, _Counting):
        return inner
    cls = _CountingBuffered if isinstance(inner, asyncio.BufferedProtocol) else _Counting
    return cls(inner, budget)


def _unwrap(protocol: Any) -> Any:
    return protocol.inner if isinstance(protocol, _Counting) else protocol


def _counted_factory(factory: Callable[[], Any]) -> Callable[[], Any]:
    budget = READ_BUDGET.get()
    if budget is None:
        return factory
    return lambda: _wrap(factory(), budget)


def guard_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop` count what probe runs receive. Idempotent; any loop (asyncio's, uvloop's)."""
    if getattr(loop, "_probe_agent_budget", False):
        return
    create_connection = loop.create_connection
    create_unix_connection = loop.create_unix_connection
    connect_accepted_socket = loop.connect_accepted_socket
    start_tls = loop.start_tls

    async def counted_create_connection(protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await create_connection(_counted_factory(protocol_factory), *args, **kwargs)
        return transport, _unwrap(protocol)

    async def counted_create_unix_connection(protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await create_unix_connection(_counted_factory(protocol_factory), *args, **kwargs)
        return transport, _unwrap(protocol)

    async def counted_connect_accepted_socket(protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await connect_accepted_socket(_counted_factory(protocol_factory), *args, **kwargs)
        return transport, _unwrap(protocol)

    async def counted_start_tls(transport: Any, protocol: Any, *args: Any, **kwargs: Any) -> Any:
        # STARTTLS (PostgreSQL, asyncio streams): the TLS layer feeds the library's protocol
        # directly from now on, so the counter moves in front of it, with the same budget.
        current = transport.get_protocol()
        if isinstance(current, _Counting):
            protocol = _wrap(_unwrap(protocol), current.budget)
        return await start_tls(transport, protocol, *args, **kwargs)

    loop.create_connection = counted_create_connection  # type: ignore[method-assign]
    loop.create_unix_connection = counted_create_unix_connection  # type: ignore[method-assign]
    loop.connect_accepted_socket = counted_connect_accepted_socket  # type: ignore[method-assign]
    loop.start_tls = counted_start_tls  # type: ignore[method-assign]
    loop._probe_agent_budget = True  # type: ignore[attr-defined]
