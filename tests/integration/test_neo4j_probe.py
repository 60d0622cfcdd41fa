"""Neo4j probe with the real driver against a Bolt 5 server written for the tests (tests/helpers/bolt.py),
and against a real Neo4j when NEO4J_URI is set (docker-compose.test.yml provides one)."""

from __future__ import annotations

import io
import os
import time

import pytest

from probe_agent.core.errors import Reason
from probe_agent.core.results import Status
from tests.conftest import ProbeOnce
from tests.helpers.bolt import BoltServer


def neo4j_probe(server: BoltServer, **extra: object) -> dict[str, object]:
    return {"type": "neo4j", "uri": server.uri, "user": "neo4j", "password": server.password, **extra}


@pytest.mark.parametrize("scheme", ["bolt", "neo4j"])
async def test_return_1_and_server_agent(probe_once: ProbeOnce, scheme: str) -> None:
    async with BoltServer() as server:
        probe = neo4j_probe(server, uri=server.uri.replace("bolt", scheme), database="neo4j")
        result = await probe_once(probe)
    assert result.status is Status.OK, result.message
    assert result.details["server_agent"] == "Neo4j/5.26.0"
    assert server.queries[-1] == "RETURN 1"
    assert {"connect", "query"} <= set(result.phases)


async def test_unexpected_value(probe_once: ProbeOnce) -> None:
    async with BoltServer() as server:
        result = await probe_once(neo4j_probe(server, query="RETURN 2", expect=1))
    assert (result.reason, result.message) == (Reason.ASSERTION, "unexpected result: got 2, expected 1")


async def test_wrong_password(probe_once: ProbeOnce) -> None:
    async with BoltServer() as server:
        result = await probe_once(neo4j_probe(server, password="wrong-password"))
    assert (result.reason, result.message) == (
        Reason.AUTH,
        "authentication failed (Neo.ClientError.Security.Unauthorized)",
    )
    assert "wrong-password" not in repr(result)


async def test_query_failure_keeps_the_servers_words_not_the_query(probe_once: ProbeOnce) -> None:
    async with BoltServer(mode="query_fail") as server:
        result = await probe_once(neo4j_probe(server, query="MATCH (n:Secret) RETURN n"))
    assert (result.reason, result.message) == (
        Reason.PROTOCOL,
        "query failed: Invalid input '…': expected '…' (line 1, column 1 (offset: 0)) (Neo.ClientError.Statement.SyntaxError)",
    )
    assert "Secret" not in repr(result)
    assert result.details["server_agent"] == "Neo4j/5.26.0"  # it logged in: say what answered


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("auth_fail", "authentication failed (Neo.ClientError.Security.Unauthorized)"),
        (
            "rate_limit",
            "too many failed logins: the server refuses this user for a while "
            "(Neo.ClientError.Security.AuthenticationRateLimit)",
        ),
        (
            "expired",
            "the password has expired: change it before the probe can log in "
            "(Neo.ClientError.Security.CredentialsExpired)",
        ),
    ],
)
async def test_login_rejections_are_auth_failures(probe_once: ProbeOnce, mode: str, message: str) -> None:
    async with BoltServer(mode=mode) as server:
        result = await probe_once(neo4j_probe(server))
    assert (result.status, result.reason, result.message) == (Status.CRITICAL, Reason.AUTH, message)


async def test_server_agent_on_probe_info_and_in_check(probe_once: ProbeOnce) -> None:
    from probe_agent.config.loader import parse_config
    from probe_agent.outputs.exposition import render_probe
    from probe_agent.outputs.reports import render_table
    from probe_agent.runtime.state import StateStore

    async with BoltServer() as server:
        result = await probe_once(neo4j_probe(server))
    config = parse_config(f"probes: [{{name: t, type: neo4j, uri: '{server.uri}', labels: {{team: graph}}}}]", env={})
    store = StateStore()
    store.probes = store.plan_config(config)
    store.record(result)
    lines = render_probe(store.probes["t"], {})["probe_info"].decode()
    assert lines == (
        f'probe_info{{probe="t",server_agent="Neo4j/5.26.0",target="{server.uri}",team="graph",type="neo4j"}} 1.0\n'
    )
    out = io.StringIO()
    render_table([result], {}, out)
    assert "[Neo4j/5.26.0]" in out.getvalue()
    # a user label of the same name wins: a series cannot carry one label twice
    own = parse_config(
        f"probes: [{{name: t, type: neo4j, uri: '{server.uri}', labels: {{server_agent: mine}}}}]", env={}
    )
    store.probes = store.plan_config(own)
    store.record(result)
    info = render_probe(store.probes["t"], {})["probe_info"].decode()
    assert info.count("server_agent=") == 1 and 'server_agent="mine"' in info


async def test_server_that_never_answers(probe_once: ProbeOnce) -> None:
    async with BoltServer(mode="hang") as server:
        start = time.monotonic()
        result = await probe_once(neo4j_probe(server, timeout="1s"))
    assert (result.reason, result.message) == (Reason.TIMEOUT, "no answer within 1s")
    assert time.monotonic() - start < 1.5


async def test_connection_dropped_mid_query(probe_once: ProbeOnce) -> None:
    async with BoltServer(mode="drop") as server:
        result = await probe_once(neo4j_probe(server))
    assert (result.reason, result.message) == (Reason.CONNECT, "connection lost during the request")


async def test_refused(probe_once: ProbeOnce) -> None:
    from tests.helpers.netfaults import free_port

    result = await probe_once({"type": "neo4j", "uri": f"bolt://127.0.0.1:{free_port()}"})
    assert (result.reason, result.message) == (Reason.CONNECT, "connection refused")


async def test_pool_keeps_the_driver(probe_once: ProbeOnce) -> None:
    from probe_agent.config.loader import parse_config
    from probe_agent.core.redact import Redactor
    from probe_agent.runtime.runner import ProbeHandle, run_probe

    async with BoltServer() as server:
        config = parse_config(
            f"probes: [{{name: n, type: neo4j, uri: '{server.uri}', user: neo4j, password: {server.password}, pool: true}}]",
            env={},
        )
        handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))
        try:
            results = [await run_probe(handle) for _ in range(3)]
        finally:
            await handle.aclose()
    assert [r.status for r in results] == [Status.OK] * 3
    assert server.messages.count(0x01) == 1  # one HELLO: one connection for three runs


@pytest.mark.external
@pytest.mark.skipif(
    not os.environ.get("NEO4J_URI"), reason="set NEO4J_URI (and NEO4J_USER, NEO4J_PASSWORD) to test a real Neo4j"
)
async def test_real_neo4j(probe_once: ProbeOnce) -> None:
    result = await probe_once(
        {
            "type": "neo4j",
            "uri": os.environ["NEO4J_URI"],
            "user": os.environ.get("NEO4J_USER", "neo4j"),
            "password": os.environ.get("NEO4J_PASSWORD", ""),
            "timeout": "10s",
        }
    )
    assert result.status is Status.OK, result.message
    assert result.details["server_agent"].startswith("Neo4j/")
