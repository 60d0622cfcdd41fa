"""AMQP probe against the shared RabbitMQ (127.0.0.1:5672, guest/guest, management API on
15672; scripts/services.sh starts it), and against fault servers for what a healthy broker
cannot show: a broker that accepts and never answers, one that speaks something else."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator

import aiormq
import pytest
from aiohttp import web

from probe_agent.core.errors import Reason
from probe_agent.core.results import Status
from tests.conftest import ProbeOnce
from tests.helpers.netfaults import HostileServer, free_port
from tests.helpers.webapp import served

BROKER = ("127.0.0.1", 5672)
MANAGEMENT = "http://127.0.0.1:15672"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
async def queue() -> AsyncIterator[tuple[str, aiormq.abc.AbstractChannel]]:
    """A fresh queue on the shared broker, deleted afterwards."""
    for port in (5672, 15672):
        if not _listening(port):
            pytest.skip(f"RabbitMQ not listening on 127.0.0.1:{port} (scripts/services.sh starts it)")
    connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    name = f"probe-agent-test-{uuid.uuid4().hex[:8]}"
    await channel.queue_declare(name)
    try:
        yield name, channel
    finally:
        await channel.queue_delete(name)
        await connection.close()


def amqp(queue_name: str, **fields: object) -> dict[str, object]:
    return {"type": "amqp", "host": BROKER[0], "password": "guest", "queue": queue_name, **fields}


async def publish(channel: aiormq.abc.AbstractChannel, queue_name: str, count: int) -> None:
    for _ in range(count):
        await channel.basic_publish(b"order", routing_key=queue_name)


async def test_ready_messages_and_consumers(
    probe_once: ProbeOnce, queue: tuple[str, aiormq.abc.AbstractChannel]
) -> None:
    name, channel = queue
    empty = await probe_once(amqp(name))
    await publish(channel, name, 3)
    dlq = await probe_once(amqp(name))
    work = await probe_once(amqp(name, dlq=False, thresholds={"consumers": {"critical": "< 1"}}))
    assert empty.status is Status.OK and empty.values["depth"] == 0, empty.message
    assert {k: dlq.values[k] for k in ("messages_ready", "consumers", "depth")} == {
        "messages_ready": 3,
        "consumers": 0,
        "depth": 3,
    }
    # a dead-letter queue warns on any depth by default, as nats_jetstream does
    assert (dlq.status, dlq.message) == (Status.WARNING, "depth 3 > 0 (warning)")
    assert (work.status, work.message) == (Status.CRITICAL, "consumers 0 < 1 (critical)")
    assert {"connect", "declare"} <= set(dlq.phases)


async def test_missing_queue_is_critical_and_named(
    probe_once: ProbeOnce, queue: tuple[str, aiormq.abc.AbstractChannel]
) -> None:
    result = await probe_once(amqp("orders.dlq-typo"))
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.ASSERTION)
    assert result.message == "queue 'orders.dlq-typo' not found in vhost '/'"


async def test_login_refused_and_the_password_never_shows(
    probe_once: ProbeOnce, queue: tuple[str, aiormq.abc.AbstractChannel]
) -> None:
    wrong = "Wr0ng-amqp-pass"
    result = await probe_once(amqp(queue[0], password=wrong))
    vhost = await probe_once(amqp(queue[0], vhost="no-such-vhost"))
    assert (result.reason, result.message) == (Reason.AUTH, "login refused by the broker (user or password)")
    assert vhost.reason is Reason.AUTH and "vhost" in vhost.message
    assert wrong not in repr(result)


async def test_unacknowledged_from_the_management_api(
    probe_once: ProbeOnce, queue: tuple[str, aiormq.abc.AbstractChannel]
) -> None:
    name, channel = queue
    await publish(channel, name, 3)
    await channel.basic_qos(prefetch_count=1)
    await channel.basic_consume(name, lambda message: asyncio.sleep(0), no_ack=False)  # takes one, never acks
    # The broker refreshes management figures every 5 s.
    deadline = time.monotonic() + 20
    while True:
        result = await probe_once(amqp(name, management_url=MANAGEMENT, dlq=False))
        if result.values.get("messages_unacknowledged") == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert result.status is Status.OK, result.message
    assert result.values["messages_unacknowledged"] == 1 and result.values["messages_ready"] == 2
    assert result.values["consumers"] == 1 and result.values["depth"] == 3
    assert "management" in result.phases


@pytest.fixture
async def fake_management() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP server on loopback answering as a management API that refuses the login."""
    seen: list[str] = []

    async def queues(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"error": "not_authorised"}, status=401)

    app = web.Application()
    app.router.add_get("/api/queues/{vhost}/{queue}", queues)
    async with served(app) as port:
        yield f"http://127.0.0.1:{port}", seen


async def test_management_api_failures_are_named(
    probe_once: ProbeOnce, queue: tuple[str, aiormq.abc.AbstractChannel], fake_management: tuple[str, list[str]]
) -> None:
    url, seen = fake_management
    down = await probe_once(amqp(queue[0], management_url=f"http://127.0.0.1:{free_port()}"))
    refused = await probe_once(amqp(queue[0], management_url=url))
    assert down.reason is Reason.CONNECT and down.message.startswith("management API: cannot connect"), down.message
    assert (refused.reason, refused.message) == (
        Reason.AUTH,
        "management API refused the login (the user needs the monitoring tag)",
    )
    assert seen == ["Basic Z3Vlc3Q6Z3Vlc3Q="]  # guest:guest, as the AMQP login


async def test_pool_keeps_one_connection(probe_once: ProbeOnce, queue: tuple[str, aiormq.abc.AbstractChannel]) -> None:
    from probe_agent.config.loader import parse_config
    from probe_agent.core.redact import Redactor
    from probe_agent.probes import close_shared
    from probe_agent.runtime.runner import ProbeHandle, run_probe

    config = parse_config(
        "probes:\n  - {name: q, type: amqp, host: 127.0.0.1, password: guest, pool: true, queue: " + queue[0] + "}\n",
        env={},
    )
    handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))
    try:
        first, second = await run_probe(handle), await run_probe(handle)
    finally:
        await handle.aclose()
        await close_shared()
    assert first.status is second.status is Status.OK
    assert "connect" in first.phases and "connect" not in second.phases


async def test_refused(probe_once: ProbeOnce) -> None:
    result = await probe_once({"type": "amqp", "host": "127.0.0.1", "port": free_port(), "queue": "q"})
    assert (result.reason, result.message) == (Reason.CONNECT, "connection refused")


async def test_hung_broker_times_out_and_the_socket_is_closed(probe_once: ProbeOnce) -> None:
    closed = asyncio.Event()

    async def accept_and_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):  # the protocol header arrives; no answer ever goes back
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(accept_and_wait, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        result = await probe_once({"type": "amqp", "host": "127.0.0.1", "port": port, "queue": "q", "timeout": "500ms"})
        elapsed = time.monotonic() - started
        await asyncio.wait_for(closed.wait(), 2)  # the probe did not leave its connection behind
    finally:
        server.close()
    assert result.reason is Reason.TIMEOUT and elapsed < 1.5, (result.message, elapsed)


async def test_not_a_broker_is_a_protocol_failure(probe_once: ProbeOnce) -> None:
    async with HostileServer("banner:HTTP/1.1 400 Bad Request\r\n\r\n") as server:
        result = await probe_once({"type": "amqp", "host": "127.0.0.1", "port": server.port, "queue": "q"})
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.PROTOCOL), (result.reason, result.message)
