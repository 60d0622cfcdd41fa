"""run_probe() semantics: timeout, exception mapping, thresholds, values surviving failure, redaction."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import ErrorRule, ErrorTable, ProbeError, Reason
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Observation, Status
from probe_agent.probes.base import Probe, ProbeConfig
from probe_agent.runtime.runner import ProbeHandle, run_probe


class ScriptedProbe(Probe[ProbeConfig]):
    """Stands in for a probe type so the runner's own rules can be checked one by one."""

    def __init__(self, values: dict[str, float] | None = None, error: BaseException | None = None, sleep: float = 0):
        self._values, self._error, self._sleep = values or {}, error, sleep

    async def run(self, obs: Observation) -> None:
        obs.values.update(self._values)
        obs.add_phase("work", 0.001)
        if self._sleep:
            await asyncio.sleep(self._sleep)
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        pass


def handle(
    probe: Probe[ProbeConfig], thresholds: str = "{}", timeout: str = "1s", secrets: tuple[str, ...] = ()
) -> ProbeHandle:
    config = parse_config(
        f"probes: [{{name: p, type: tcp, host: 127.0.0.1, port: 1, timeout: {timeout}, thresholds: {thresholds}}}]",
        env={},
    )
    return ProbeHandle(config.probes[0], probe, Redactor(secrets))


async def test_ok() -> None:
    result = await run_probe(handle(ScriptedProbe()))
    assert result.status is Status.OK and result.success and result.reason is None
    assert result.phases == {"work": 0.001}


async def test_timeout_is_enforced_by_the_runner() -> None:
    start = time.monotonic()
    result = await run_probe(handle(ScriptedProbe(sleep=30), timeout="200ms"))
    assert time.monotonic() - start < 1.0
    assert result.status is Status.CRITICAL and result.reason is Reason.TIMEOUT
    assert result.message == "no answer within 0.2s"


@pytest.mark.parametrize(
    ("error", "reason", "status"),
    [
        (ProbeError(Reason.AUTH, "password authentication failed"), Reason.AUTH, Status.CRITICAL),
        (ConnectionRefusedError(), Reason.CONNECT, Status.CRITICAL),
        (ConnectionResetError(), Reason.CONNECT, Status.CRITICAL),
        (asyncio.IncompleteReadError(b"", 4), Reason.PROTOCOL, Status.CRITICAL),
        (KeyError("bug"), Reason.INTERNAL, Status.UNKNOWN),
        # a file on the agent's machine its user cannot read: the agent's problem, not the target's
        (PermissionError(13, "Permission denied", "/etc/probe-agent/client.key"), Reason.INTERNAL, Status.UNKNOWN),
        (PermissionError(13, "Permission denied"), Reason.CONNECT, Status.CRITICAL),  # a socket's
    ],
)
async def test_exceptions_become_reasons(error: BaseException, reason: Reason, status: Status) -> None:
    result = await run_probe(handle(ScriptedProbe(error=error)))
    assert (result.reason, result.status, result.success) == (reason, status, False)


async def test_value_thresholds_warning_and_critical() -> None:
    h = handle(
        ScriptedProbe(values={"cert_expiry_days": 5}),
        thresholds="{cert_expiry_days: {warning: '< 30', critical: '< 7'}}",
    )
    result = await run_probe(h)
    assert result.status is Status.CRITICAL and result.success is False
    assert result.reason is None and result.message == "cert_expiry_days 5 days < 7 days (critical)"
    h = handle(
        ScriptedProbe(values={"cert_expiry_days": 20}),
        thresholds="{cert_expiry_days: {warning: '< 30', critical: '< 7'}}",
    )
    result = await run_probe(h)
    assert result.status is Status.WARNING and result.success is True


async def test_duration_threshold() -> None:
    result = await run_probe(handle(ScriptedProbe(sleep=0.06), thresholds="{duration: {warning: 50ms}}"))
    assert result.status is Status.WARNING
    assert re.fullmatch(r"duration 6\d ms > 50 ms \(warning\)", result.message), result.message  # human units


async def test_values_survive_failure() -> None:
    h = handle(ScriptedProbe(values={"cert_expiry_days": 2}, error=ProbeError(Reason.ASSERTION, "bad body")))
    result = await run_probe(h)
    assert result.values == {"cert_expiry_days": 2}
    assert result.reason is Reason.ASSERTION and result.message == "bad body"


async def test_messages_are_redacted_and_short() -> None:
    error = ProbeError(Reason.AUTH, "login as app with hunter2-secret failed " + "x" * 1000)
    result = await run_probe(handle(ScriptedProbe(error=error), secrets=("hunter2-secret",)))
    assert "hunter2-secret" not in result.message
    assert len(result.message) <= 300


def _emfile() -> OSError:
    import errno
    import os

    return OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def _wrapped_emfile() -> BaseException:
    import aiohttp

    # what aiohttp raises when the agent cannot open a socket: a connect error, by its type
    key = aiohttp.client_reqrep.ConnectionKey("t", 80, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, _emfile())


def _folded_emfile() -> BaseException:
    # redis-py and others fold the OS error into their own message
    return ConnectionError("Error 24 connecting to 127.0.0.1:6379. Too many open files.")


def _probe_error_from_emfile() -> BaseException:
    try:
        raise _emfile()
    except OSError as exc:
        try:
            raise ProbeError(Reason.CONNECT, "cannot connect") from exc
        except ProbeError as wrapped:
            return wrapped


@pytest.mark.parametrize("make", [_emfile, _wrapped_emfile, _folded_emfile, _probe_error_from_emfile, MemoryError])
async def test_the_agent_out_of_fds_or_memory_is_never_the_targets_fault(make: object) -> None:
    result = await run_probe(handle(ScriptedProbe(error=make())))  # type: ignore[operator]
    assert result.status is Status.UNKNOWN
    assert result.reason is Reason.INTERNAL
    assert "the agent is out of" in result.message and "not a fault of the target" in result.message


class WaitsUntilNearItsDeadline(ScriptedProbe):
    """Waits for an answer that never comes, and says so itself just before the runner would."""

    async def run(self, obs: Observation) -> None:
        left = obs.remaining()
        assert 0.5 < left <= 1.0, left  # the probe's timeout is 1s
        await asyncio.sleep(left - 0.2)
        raise ProbeError(Reason.ASSERTION, f"no PONG within the timeout ({left:.1f}s left at the start)")


async def test_a_probe_can_read_its_deadline_and_end_with_its_own_reason() -> None:
    result = await run_probe(handle(WaitsUntilNearItsDeadline()))
    assert result.reason is Reason.ASSERTION and result.message.startswith("no PONG within the timeout"), result
    assert Observation().remaining() == float("inf")  # outside a run: no deadline


class AsksThenWorks(Probe[ProbeConfig]):
    """Asks a real server that answers in 50 ms, then holds the loop: the agent's own work after
    the answer (parsing, assertions), or any other task the loop runs before waking this one."""

    def __init__(self, port: int, busy: float, fail_after: bool = False):
        self._port, self._busy, self._fail_after = port, busy, fail_after

    async def run(self, obs: Observation) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        try:
            writer.write(b"ping\n")
            assert await reader.readline() == b"pong\n"
            time.sleep(self._busy)  # the point: the loop is held after the answer
            if self._fail_after:
                raise ProbeError(Reason.ASSERTION, "the answer was wrong")
        finally:
            writer.close()

    async def aclose(self) -> None:
        pass


async def test_a_runs_duration_ends_at_the_targets_answer_not_at_the_agents_work_after_it() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        await asyncio.sleep(0.05)
        writer.write(b"pong\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        ok = await run_probe(handle(AsksThenWorks(port, busy=0.2)))
        failed = await run_probe(handle(AsksThenWorks(port, busy=0.2, fail_after=True)))
    assert ok.status is Status.OK, ok
    assert 0.045 < ok.duration < 0.15, ok.duration  # the answer came after 50 ms; 200 ms of work after it
    # a failed run keeps its whole time: what went wrong may be what took it
    assert failed.reason is Reason.ASSERTION and failed.duration >= 0.25, failed.duration


class _Base(Exception):
    pass


class _Mid(_Base):
    pass


class _Leaf(_Mid):
    pass


def test_an_error_table_takes_the_most_specific_row_whatever_its_order() -> None:
    table = ErrorTable(
        ErrorRule(_Base, Reason.PROTOCOL, "base: {exc}"),
        ErrorRule(_Mid, Reason.CONNECT, "mid"),
        ErrorRule(_Leaf, Reason.AUTH, lambda exc: f"leaf {type(exc).__name__}"),
    )
    found = table.translate(_Leaf("x"))
    assert found is not None and (found.reason, found.message) == (Reason.AUTH, "leaf _Leaf")
    found = table.translate(_Mid("x"))
    assert found is not None and found.reason is Reason.CONNECT  # an if-ladder listing _Base first said PROTOCOL
    found = table.translate(_Base("boom"))
    assert found is not None and found.message == "base: boom"
    assert table.translate(ValueError()) is None


def test_an_error_table_row_may_narrow_to_some_instances_and_ties_go_to_the_first() -> None:
    table = ErrorTable(
        ErrorRule(_Mid, Reason.AUTH, "refused", when=lambda exc: "WRONGPASS" in str(exc)),
        ErrorRule(_Mid, Reason.PROTOCOL, "other"),
        ErrorRule(_Mid, Reason.CONNECT, "never: a tie goes to the first"),
    )
    refused, other = table.translate(_Mid("WRONGPASS x")), table.translate(_Mid("y"))
    assert refused is not None and refused.reason is Reason.AUTH
    assert other is not None and other.reason is Reason.PROTOCOL
