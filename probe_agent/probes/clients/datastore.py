"""Pieces the datastore probes share: connection options, password files, and the pool: true slot."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field, SecretStr, model_validator

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.files import read_named_file
from probe_agent.core.results import Observation
from probe_agent.probes.base import ProbeConfig
from probe_agent.schema.fields import Host

T = TypeVar("T")

MAX_SECRET_FILE_BYTES = 64 * 1024  # a password, a token: anything larger is not one


class DatastoreConfig(ProbeConfig):
    """Options common to datastore probes. `password` and a password inside `dsn` are redacted everywhere."""

    host: Host = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)  # 0 or unset: the type's default_port
    user: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None  # read once at load; its content is treated as the password
    # pool: false (default) opens and closes a connection every run, so "too many connections"
    # or a changed password shows up as it would for a new client. pool: true keeps one
    # connection between runs and replaces it after any failure.
    pool: bool = False

    @model_validator(mode="before")
    @classmethod
    def _read_password_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("password_file"):
            if data.get("password"):
                raise ValueError("password_file: set either password or password_file, not both")
            raw = read_named_file(str(data["password_file"]), "password_file", MAX_SECRET_FILE_BYTES)
            try:
                secret = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ValueError(f"password_file: {data['password_file']} is not UTF-8 text") from None
            data = {**data, "password": secret}
        return data

    def secret_password(self) -> str | None:
        return self.password.get_secret_value() if self.password is not None else None


class QueryConfig(DatastoreConfig):
    """A datastore probe that runs one query and may check the first value it returns."""

    default_query: ClassVar[str] = "SELECT 1"

    database: str | None = None
    query: str = ""  # default: default_query
    expect: Any = None  # the first value of the first row must equal this; 1 for the default query

    def kept_out_of_traces(self) -> tuple[str, ...]:
        return (self.query,)  # a driver's error may quote the query: the trace says `…` instead

    @model_validator(mode="before")
    @classmethod
    def _query_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data.setdefault("query", cls.default_query)
        if "expect" not in data and data["query"] == cls.default_query:
            data["expect"] = 1
        return data

    @classmethod
    def default_thresholds(cls, raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        # The "too many connections" runbook warns at 80% unless the probe says otherwise.
        measure = raw.get("measure")
        if isinstance(measure, list) and "connections" in measure:
            return {"connections_used_ratio": {"warning": "> 0.8"}}
        return {}

    def check_expected(self, has_row: bool, first: Any) -> None:
        # Compared as text: drivers differ on int / Decimal / str for the same answer.
        if self.expect is not None and (not has_row or str(first) != str(self.expect)):
            got = "no rows" if not has_row else repr(first)
            raise ProbeError(Reason.ASSERTION, f"unexpected result: got {got}, expected {self.expect!r}")


class ConnectionSlot(Generic[T]):
    """Hands out a connection for one run.

    Without pooling: a new connection each run, closed after it. With pooling: the
    same connection while it works; a failed run throws it away, so the next run
    reconnects by itself after a server restart.
    """

    CLOSE_TIMEOUT = 2.0

    def __init__(
        self,
        connect: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]],
        abort: Callable[[T], None],
        keep: bool,
    ):
        self._connect, self._close, self._abort, self._keep = connect, close, abort, keep
        self._held: T | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def connection(self, obs: Observation) -> AsyncIterator[T]:
        """A connection for this run; the time to open one, when needed, is the `connect` phase."""
        conn = self._held
        self._held = None
        if conn is None:
            start = time.perf_counter()
            conn = await self._connect()
            obs.add_phase("connect", time.perf_counter() - start)
        try:
            yield conn
        except BaseException:
            self.discard(conn)
            raise
        if self._keep:
            self._held = conn
        else:
            await self._close_bounded(conn)

    def discard(self, conn: T) -> None:
        """Close a connection whose state is unknown, in the background: a failed or cancelled
        run must not wait on a server that stopped answering, and the connection is never reused."""
        task = asyncio.get_running_loop().create_task(self._close_bounded(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_bounded(self, conn: T) -> None:
        try:
            await asyncio.wait_for(self._close(conn), self.CLOSE_TIMEOUT)
        except Exception:  # noqa: BLE001 - a polite close failed: cut the connection instead
            with contextlib.suppress(Exception):
                self._abort(conn)

    async def aclose(self) -> None:
        if self._held is not None:
            conn, self._held = self._held, None
            await self._close_bounded(conn)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self.CLOSE_TIMEOUT + 1)
