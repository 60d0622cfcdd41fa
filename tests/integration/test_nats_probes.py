"""nats and nats_jetstream probes against real nats-server instances started by the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import Reason
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Status
from probe_agent.runtime.runner import ProbeHandle, run_probe
from tests.conftest import ProbeOnce
from tests.helpers.netfaults import FaultProxy
from tests.helpers.servers import PrivateNats
from tests.integration.conftest import need_shared


@pytest.fixture
async def js(private_nats: PrivateNats) -> AsyncIterator[Any]:
    client = await nats.connect(private_nats.url)
    context = client.jetstream()
    created: list[str] = []

    async def stream(name: str, **config: Any) -> None:
        await context.add_stream(StreamConfig(name=name, **config))
        created.append(name)

    context.make_stream = stream  # type: ignore[attr-defined]
    yield context
    for name in created:
        await context.delete_stream(name)
    await client.close()


def jetstream(server: PrivateNats, **extra: Any) -> dict[str, Any]:
    return {"type": "nats_jetstream", "servers": [server.url], **extra}


async def depth_both_ways(probe_once: ProbeOnce, server: PrivateNats, **extra: Any) -> tuple[float, float]:
    client = await probe_once(jetstream(server, **extra))
    monitor = await probe_once(jetstream(server, source="monitor", monitor_url=server.monitor_url, **extra))
    assert "depth" in client.values, client.message
    return client.values["depth"], monitor.values["depth"]


async def test_varz_values_and_connections_threshold(probe_once: ProbeOnce, private_nats: PrivateNats) -> None:
    probe = {
        "type": "nats",
        "monitor_url": private_nats.monitor_url,
        "servers": [private_nats.url],
        "jetstream": True,
        "thresholds": {"connections": {"warning": "> 5"}},
    }
    quiet = await probe_once(probe)
    assert quiet.status is Status.OK, quiet.message
    for name in (
        "connections",
        "slow_consumers",
        "subscriptions",
        "memory_bytes",
        "cpu_ratio",
        "in_messages",
        "out_messages",
        "in_bytes",
        "out_bytes",
        "uptime_seconds",
        "total_connections",
    ):
        assert name in quiet.values, name
    assert quiet.values["memory_bytes"] > 1_000_000
    assert {"monitor", "connect", "round_trip"} <= set(quiet.phases)
    clients = [await nats.connect(private_nats.url) for _ in range(8)]
    try:
        busy = await probe_once(probe)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert busy.values["connections"] >= 8
    assert busy.status is Status.WARNING and busy.message.startswith("connections ")


async def test_work_queue_depth_is_exact(probe_once: ProbeOnce, private_nats: PrivateNats, js: Any) -> None:
    await js.make_stream("DLQ_WQ", subjects=["dlq.wq.>"], retention=RetentionPolicy.WORK_QUEUE)
    for i in range(7):
        await js.publish("dlq.wq.orders", f"failed {i}".encode())
    assert await depth_both_ways(probe_once, private_nats, stream="DLQ_WQ") == (7, 7)
    sub = await js.pull_subscribe("dlq.wq.>", durable="reprocess", stream="DLQ_WQ")
    for msg in await sub.fetch(3, timeout=2):
        await msg.ack_sync()
    assert await depth_both_ways(probe_once, private_nats, stream="DLQ_WQ") == (4, 4)


async def test_limits_stream_consumer_depth(probe_once: ProbeOnce, private_nats: PrivateNats, js: Any) -> None:
    await js.make_stream("ORDERS", subjects=["orders.>"])
    for i in range(6):
        await js.publish("orders.new", f"order {i}".encode())
    sub = await js.pull_subscribe("orders.>", durable="worker", stream="ORDERS")
    assert await depth_both_ways(probe_once, private_nats, stream="ORDERS", consumer="worker") == (6, 6)
    acked = await sub.fetch(2, timeout=2)
    for msg in acked:
        await msg.ack_sync()
    held = await sub.fetch(1, timeout=2)  # delivered, not acked: still backlog
    result = await probe_once(jetstream(private_nats, stream="ORDERS", consumer="worker"))
    assert result.values["depth"] == 4 and result.values["ack_pending"] == 1
    assert result.values["stream_messages"] == 6  # limits retention keeps acked messages
    await held[0].ack_sync()
    assert await depth_both_ways(probe_once, private_nats, stream="ORDERS", consumer="worker") == (3, 3)


async def test_runbook_thresholds(probe_once: ProbeOnce, private_nats: PrivateNats, js: Any) -> None:
    await js.make_stream("DLQ_T", subjects=["dlq.t"], retention=RetentionPolicy.WORK_QUEUE)
    empty = await probe_once(jetstream(private_nats, stream="DLQ_T"))
    assert empty.status is Status.OK and empty.values["depth"] == 0
    await js.publish("dlq.t", b"x")
    one = await probe_once(jetstream(private_nats, stream="DLQ_T"))
    assert one.status is Status.WARNING and one.message == "depth 1 > 0 (warning)"  # the DLQ default
    limits = {"thresholds": {"depth": {"warning": "> 2", "critical": "> 4"}}, "dlq": False}
    for _ in range(4):
        await js.publish("dlq.t", b"x")
    five = await probe_once(jetstream(private_nats, stream="DLQ_T", **limits))
    assert five.status is Status.CRITICAL and five.reason is None and five.values["depth"] == 5
    assert five.message == "depth 5 > 4 (critical)"


async def test_missing_stream_and_consumer(probe_once: ProbeOnce, private_nats: PrivateNats, js: Any) -> None:
    await js.make_stream("HAS_NO_CONSUMER", subjects=["hnc"])
    for source in ({}, {"source": "monitor", "monitor_url": private_nats.monitor_url}):
        missing = await probe_once(jetstream(private_nats, stream="NOPE", **source))
        assert (missing.status, missing.reason, missing.message) == (
            Status.CRITICAL,
            Reason.ASSERTION,
            "stream 'NOPE' not found",
        )
        no_consumer = await probe_once(jetstream(private_nats, stream="HAS_NO_CONSUMER", consumer="ghost", **source))
        assert no_consumer.message == "consumer 'ghost' not found on stream 'HAS_NO_CONSUMER'"


async def test_max_deliveries_advisories_fill_the_dlq(
    probe_once: ProbeOnce, private_nats: PrivateNats, js: Any
) -> None:
    await js.make_stream("WORK", subjects=["work.>"])
    await js.make_stream("DLQ", subjects=["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WORK.>"])
    await js.add_consumer("WORK", ConsumerConfig(durable_name="flaky", max_deliver=2, ack_wait=1.0))
    before = await probe_once(jetstream(private_nats, stream="DLQ"))
    assert before.status is Status.OK and before.values["depth"] == 0
    await js.publish("work.job", b"poison pill")
    sub = await js.pull_subscribe_bind("flaky", stream="WORK")
    for _ in range(2):  # each delivery fails
        for msg in await sub.fetch(1, timeout=3):
            await msg.nak()
    # the next pull finds the message out of deliveries: the server drops it and advises
    with pytest.raises(nats.errors.TimeoutError):
        await sub.fetch(1, timeout=1)
    deadline, after = time.monotonic() + 5, before
    while time.monotonic() < deadline and after.values.get("depth", 0) < 1:
        await asyncio.sleep(0.1)
        after = await probe_once(jetstream(private_nats, stream="DLQ"))
    assert after.values["depth"] == 1 and after.status is Status.WARNING
    worker = await probe_once(jetstream(private_nats, stream="WORK", consumer="flaky", dlq=False))
    assert worker.values["redelivered"] >= 1


async def test_stopped_and_restarted_server(tmp_path: Path) -> None:
    server = PrivateNats().start()
    try:
        config = parse_config(
            f"probes: [{{name: n, type: nats, monitor_url: '{server.monitor_url}', servers: ['{server.url}'], "
            "pool: true, timeout: 2s}]",
            env={},
        )
        handle = ProbeHandle.build(config.probes[0], Redactor())
        try:
            assert (await run_probe(handle)).status is Status.OK
            server.stop()
            down = await run_probe(handle)
            assert down.reason is Reason.CONNECT and "connection refused" in down.message
            server.start()
            recovered = [await run_probe(handle) for _ in range(2)]
            assert recovered[-1].status is Status.OK, [r.message for r in recovered]
        finally:
            await handle.aclose()
    finally:
        server.cleanup()


async def test_black_holed_monitoring_port(probe_once: ProbeOnce, private_nats: PrivateNats) -> None:
    async with FaultProxy("127.0.0.1", private_nats.monitor_port) as proxy:
        await proxy.set_mode("blackhole")
        start = time.monotonic()
        result = await probe_once({"type": "nats", "monitor_url": f"http://127.0.0.1:{proxy.port}", "timeout": "1s"})
    assert (result.reason, result.message) == (Reason.TIMEOUT, "no answer within 1s")
    assert time.monotonic() - start < 1.5


async def test_auth(probe_once: ProbeOnce, private_nats_auth: PrivateNats) -> None:
    server = private_nats_auth
    base = {"type": "nats", "monitor_url": server.monitor_url, "servers": [server.url], "user": "probe"}
    ok = await probe_once({**base, "password": server.password})
    assert ok.status is Status.OK, ok.message
    wrong = await probe_once({**base, "password": "wrong-nats-pw"})
    assert (wrong.reason, wrong.message) == (Reason.AUTH, "authorization violation: the server refused the credentials")
    js_wrong = await probe_once(
        {"type": "nats_jetstream", "servers": [server.url], "stream": "X", "user": "probe", "password": "wrong-nats-pw"}
    )
    assert js_wrong.reason is Reason.AUTH


async def test_shared_server_without_monitoring(probe_once: ProbeOnce) -> None:
    port = need_shared("nats")
    result = await probe_once(
        {"type": "nats_jetstream", "servers": [f"nats://127.0.0.1:{port}"], "stream": "PROBE_AGENT_NO_SUCH_STREAM"}
    )
    # JetStream answers on the shared server; the stream is not there
    assert result.message == "stream 'PROBE_AGENT_NO_SUCH_STREAM' not found"


def test_credentials_never_leak(tmp_path: Path, private_nats_auth: PrivateNats) -> None:
    from tests.helpers.agent import all_outputs, assert_no_secret

    server = private_nats_auth
    config = tmp_path / "probes.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 900ms}}
probes:
  - {{name: nats-right, type: nats, monitor_url: "{server.monitor_url}", servers: ["{server.url}"], user: probe, password: "${{NATS_PASSWORD}}"}}
  - {{name: nats-wrong, type: nats, monitor_url: "{server.monitor_url}", servers: ["nats://probe:wrong-In-Url-pw@127.0.0.1:{server.port}"]}}
  - {{name: dlq-wrong, type: nats_jetstream, servers: ["{server.url}"], stream: DLQ, user: probe, token: "tok-Nats-Secret-1"}}
""")
    assert server.password
    outputs = all_outputs(config, env={"NATS_PASSWORD": server.password})
    assert "nats-wrong" in outputs["health"] and "authorization violation" in outputs["check table"]
    assert_no_secret(outputs, {"right": server.password, "url": "wrong-In-Url-pw", "token": "tok-Nats-Secret-1"})


@pytest.mark.parametrize(
    "servers", [["nats://127.0.0.1:{port}"], ["nats://127.0.0.1:{port}", "nats://127.0.0.1:{port}"]]
)
async def test_a_refused_port_is_connect_at_once_not_a_timeout(probe_once: ProbeOnce, servers: list[str]) -> None:
    from tests.helpers.netfaults import free_port

    port = free_port()
    started = time.monotonic()
    result = await probe_once(
        {"type": "nats_jetstream", "servers": [s.format(port=port) for s in servers], "stream": "DLQ", "timeout": "3s"}
    )
    assert result.reason is Reason.CONNECT, result
    assert "connection refused" in result.message
    assert time.monotonic() - started < 0.5
