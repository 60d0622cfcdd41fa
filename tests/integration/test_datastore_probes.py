"""postgres, mysql and redis probes against real servers: the failure modes an on-call engineer meets.

The same scenarios run for each type; each type's row says how to reach its private server and
what the server answers. Private servers are used because these tests stop and break them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import Reason
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Result, Status
from probe_agent.runtime.runner import ProbeHandle, run_probe
from tests.conftest import ProbeOnce
from tests.helpers.netfaults import FaultProxy


@dataclass
class Kind:
    type: str
    fixture: str
    user: str | None
    wrong_password_message: str
    unexpected: dict[str, Any] | None  # a probe setting whose answer is not the expected one
    unexpected_message: str

    def probe(self, port: int, password: str, **extra: Any) -> dict[str, Any]:
        definition = {"type": self.type, "host": "127.0.0.1", "port": port, "password": password, **extra}
        if self.user:
            definition["user"] = self.user
        return definition


KINDS = [
    Kind(
        "postgres",
        "private_postgres",
        "postgres",
        'authentication failed (SQLSTATE 28P01): password authentication failed for user "postgres"',
        {"query": "SELECT 2", "expect": 1},
        "unexpected result: got 2, expected 1",
    ),
    Kind(
        "mysql",
        "private_mariadb",
        "probe",
        "authentication failed (error 1045): Access denied for user 'probe'@'localhost' (using password: YES)",
        {"query": "SELECT 'maintenance'", "expect": "ok"},
        "unexpected result: got 'maintenance', expected 'ok'",
    ),
    Kind(
        "redis",
        "private_redis",
        None,
        "authentication failed: invalid username-password pair or user is disabled.",
        None,
        "",
    ),
]


@pytest.fixture(params=KINDS, ids=[k.type for k in KINDS])
def kind(request: pytest.FixtureRequest) -> tuple[Kind, Any]:
    return request.param, request.getfixturevalue(request.param.fixture)


async def test_success(probe_once: ProbeOnce, kind: tuple[Kind, Any]) -> None:
    k, server = kind
    result = await probe_once(k.probe(server.port, server.password))
    assert result.status is Status.OK, result.message
    assert "connect" in result.phases


async def test_wrong_password(probe_once: ProbeOnce, kind: tuple[Kind, Any]) -> None:
    k, server = kind
    result = await probe_once(k.probe(server.port, "not-the-password"))
    assert (result.reason, result.message) == (Reason.AUTH, k.wrong_password_message)


@pytest.mark.parametrize("type_name", [k.type for k in KINDS if k.unexpected])  # PING has one answer
async def test_unexpected_result(probe_once: ProbeOnce, request: pytest.FixtureRequest, type_name: str) -> None:
    k = next(k for k in KINDS if k.type == type_name)
    server = request.getfixturevalue(k.fixture)
    assert k.unexpected is not None
    result = await probe_once(k.probe(server.port, server.password, **k.unexpected))
    assert (result.reason, result.message) == (Reason.ASSERTION, k.unexpected_message)


async def test_black_holed_server_times_out_within_deadline(probe_once: ProbeOnce, kind: tuple[Kind, Any]) -> None:
    k, server = kind
    async with FaultProxy("127.0.0.1", server.port) as proxy:
        await proxy.set_mode("blackhole")
        start = time.monotonic()
        result = await probe_once(k.probe(proxy.port, server.password, timeout="1s"))
        elapsed = time.monotonic() - start
    assert (result.reason, result.message) == (Reason.TIMEOUT, "no answer within 1s")
    assert elapsed < 1.5, f"took {elapsed:.2f}s for a 1s deadline"


async def test_slow_network_still_succeeds(probe_once: ProbeOnce, kind: tuple[Kind, Any]) -> None:
    k, server = kind
    async with FaultProxy("127.0.0.1", server.port) as proxy:
        proxy.latency = 0.05
        result = await probe_once(k.probe(proxy.port, server.password, timeout="3s"))
    assert result.status is Status.OK, result.message
    assert result.duration > 0.1  # at least two round trips through the delay


async def test_connection_cut_mid_conversation(probe_once: ProbeOnce, kind: tuple[Kind, Any]) -> None:
    k, server = kind
    async with FaultProxy("127.0.0.1", server.port) as proxy:
        await proxy.set_mode("cut")
        proxy.cut_after = 8
        result = await probe_once(k.probe(proxy.port, server.password, timeout="2s"))
    assert result.status is Status.CRITICAL
    assert result.reason in (Reason.CONNECT, Reason.PROTOCOL), result.message


async def run_handle(handle: ProbeHandle) -> Result:
    return await run_probe(handle)


async def test_stopped_server_then_pool_recovers_after_restart(kind: tuple[Kind, Any]) -> None:
    k, server = kind
    definition = {"name": "t", "interval": "60s", "timeout": "2s", **k.probe(server.port, server.password, pool=True)}
    import yaml

    config = parse_config(yaml.safe_dump({"probes": [definition]}), env={})
    handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))
    try:
        first = await run_probe(handle)
        assert first.status is Status.OK, first.message
        second = await run_probe(handle)
        assert second.status is Status.OK and "connect" not in second.phases  # the pooled connection was reused

        server.stop()
        down = await run_probe(handle)
        assert down.reason is Reason.CONNECT, down.message
        assert any(word in down.message.lower() for word in ("refused", "lost", "closed")), down.message

        server.start()
        recovered = await run_probe(handle)
        assert recovered.status is Status.OK, recovered.message

        # A restart the probe did not see: the held connection is dead; one failed run at most, then it recovers.
        server.stop()
        server.start()
        after = [await run_probe(handle) for _ in range(2)]
        assert after[-1].status is Status.OK, [r.message for r in after]
    finally:
        await handle.aclose()


def test_passwords_never_leak(tmp_path: Any, request: pytest.FixtureRequest) -> None:
    from tests.helpers.agent import all_outputs, assert_no_secret

    pg, my, rd = (request.getfixturevalue(k.fixture) for k in KINDS)
    secrets = {
        "PG_WRONG": "pg-Wr0ng-Secret",
        "MY_WRONG": "my-Wr0ng-Secret",
        "RD_WRONG": "rd-Wr0ng-Secret",
        "PG_RIGHT": pg.password,
        "MY_RIGHT": my.password,
        "RD_RIGHT": rd.password,
    }
    config = tmp_path / "probes.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 900ms}}
probes:
  - {{name: pg-wrong, type: postgres, dsn: "postgresql://postgres:${{PG_WRONG}}@127.0.0.1:{pg.port}/postgres"}}
  - {{name: pg-right, type: postgres, port: {pg.port}, user: postgres, password: "${{PG_RIGHT}}"}}
  - {{name: my-wrong, type: mysql, port: {my.port}, user: probe, password: "{secrets["MY_WRONG"]}"}}
  - {{name: my-right, type: mysql, port: {my.port}, user: probe, password: "${{MY_RIGHT}}"}}
  - {{name: rd-wrong, type: redis, port: {rd.port}, password: "${{RD_WRONG}}"}}
  - {{name: rd-right, type: redis, port: {rd.port}, password: "${{RD_RIGHT}}", pool: true}}
""")
    env = {k: v for k, v in secrets.items() if k != "MY_WRONG"}
    outputs = all_outputs(config, env=env)
    health = outputs["health"]
    for name in ("pg-wrong", "my-wrong", "rd-wrong"):
        assert name in health and "authentication failed" in outputs["check table"]
    assert outputs["check json"].count('"status": "ok"') == 3
    assert_no_secret(outputs, secrets)


def test_postgres_under_an_unreadable_home_names_the_file(
    probe_once: ProbeOnce, private_postgres: Any, tmp_path: Any
) -> None:
    """A service user (nagios, a DynamicUser) whose $HOME it cannot read: the PostgreSQL client
    looks for client certificates in ~/.postgresql/ and fails on the stat. The run says which
    file and what to do, as the agent's own problem, not 'connect: Permission denied'."""
    import asyncio
    import json
    import os

    home = tmp_path / "home"
    (home / ".postgresql").mkdir(parents=True)
    home.chmod(0o700)
    definition = {"type": "postgres", "host": "127.0.0.1", "port": private_postgres.port, "user": "postgres"}
    definition["password"] = private_postgres.password

    async def once() -> Result:
        return await probe_once(definition)

    # warm up here, so the child imports nothing after it has given up root's files
    assert asyncio.run(once()).status is Status.OK
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.environ["HOME"] = str(home)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)  # nobody: root reads any file, so the test drops to a user that cannot
            else:
                home.chmod(0)
            result = asyncio.run(once())
            os.write(writer, json.dumps([result.status.name, result.reason, result.message]).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as answer:
        reported = answer.read()
    os.waitpid(child, 0)
    home.chmod(0o700)
    status, reason, message = json.loads(reported)
    assert status == "UNKNOWN" and reason == "internal", reported  # the agent cannot tell
    assert f"cannot read {home}/.postgresql/postgresql.key: Permission denied" in message, message
    assert "HOME" in message and "sslmode" in message, message  # what to do about it
