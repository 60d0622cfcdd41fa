"""gRPC health probe against a real grpcio server on loopback, started by the test, with the
standard health service (grpcio-health-checking), with TLS, and without the health service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from probe_agent.core.errors import ConfigError, Reason
from probe_agent.core.results import Status
from tests.conftest import ProbeOnce
from tests.helpers.certs import CertFiles, make_cert
from tests.helpers.netfaults import BlackHole, free_port

Serving = health_pb2.HealthCheckResponse


class HealthServer:
    def __init__(self, server: grpc.aio.Server, servicer: health.aio.HealthServicer | None, port: int):
        self.server, self.servicer, self.port = server, servicer, port

    async def set(self, service: str, status: int) -> None:
        assert self.servicer is not None
        await self.servicer.set(service, status)


async def start_server(with_health: bool = True, tls: CertFiles | None = None) -> HealthServer:
    server = grpc.aio.server()
    servicer = None
    if with_health:
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        credentials = grpc.ssl_server_credentials([(tls.key.read_bytes(), tls.cert.read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return HealthServer(server, servicer, port)


@pytest.fixture
async def grpc_server() -> AsyncIterator[HealthServer]:
    server = await start_server()
    await server.set("orders.v1.Orders", Serving.SERVING)
    await server.set("payments.v1.Payments", Serving.NOT_SERVING)
    await server.set("warming.v1.Cache", Serving.UNKNOWN)
    yield server
    await server.server.stop(None)


def grpc_probe(port: int, **fields: object) -> dict[str, object]:
    return {"type": "grpc", "host": "127.0.0.1", "port": port, **fields}


async def test_serving(probe_once: ProbeOnce, grpc_server: HealthServer) -> None:
    whole = await probe_once(grpc_probe(grpc_server.port))
    orders = await probe_once(grpc_probe(grpc_server.port, service="orders.v1.Orders"))
    assert whole.status is orders.status is Status.OK, (whole.message, orders.message)
    assert (orders.values["status_code"], orders.values["serving_status"], orders.values["ssl"]) == (0, 1, 0)
    assert orders.details["serving_status"] == "SERVING"
    # blackbox_exporter's probe_grpc_healthcheck_response: every status, 1 for the answer
    answered = {
        orders.value_labels[k]["serving_status"]: v for k, v in orders.values.items() if k.startswith("healthcheck_")
    }
    assert answered == {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 0, "SERVICE_UNKNOWN": 0}
    assert 0 < orders.phases["check"] < 1


@pytest.mark.parametrize(
    ("service", "reason", "message"),
    [
        ("payments.v1.Payments", Reason.ASSERTION, "service 'payments.v1.Payments' is NOT_SERVING"),
        ("warming.v1.Cache", Reason.ASSERTION, "service 'warming.v1.Cache' is UNKNOWN"),
        ("nobody.v1.Nobody", Reason.ASSERTION, "the health service does not know service 'nobody.v1.Nobody'"),
    ],
)
async def test_not_serving_says_which(
    probe_once: ProbeOnce, grpc_server: HealthServer, service: str, reason: Reason, message: str
) -> None:
    result = await probe_once(grpc_probe(grpc_server.port, service=service))
    assert (result.status, result.reason, result.message) == (Status.CRITICAL, reason, message)


async def test_status_changes_are_seen(probe_once: ProbeOnce, grpc_server: HealthServer) -> None:
    await grpc_server.set("orders.v1.Orders", Serving.NOT_SERVING)
    down = await probe_once(grpc_probe(grpc_server.port, service="orders.v1.Orders"))
    await grpc_server.set("orders.v1.Orders", Serving.SERVING)
    up = await probe_once(grpc_probe(grpc_server.port, service="orders.v1.Orders"))
    assert (down.values["serving_status"], up.values["serving_status"]) == (2, 1)


async def test_server_without_health_service(probe_once: ProbeOnce) -> None:
    bare = await start_server(with_health=False)
    try:
        result = await probe_once(grpc_probe(bare.port))
    finally:
        await bare.server.stop(None)
    assert (result.reason, result.message) == (Reason.PROTOCOL, "the server does not implement grpc.health.v1.Health")
    assert result.values["status_code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]


async def test_refused(probe_once: ProbeOnce) -> None:
    result = await probe_once(grpc_probe(free_port()))
    assert (result.reason, result.message) == (Reason.CONNECT, "connection refused")


async def test_hung_server_times_out_within_the_deadline(probe_once: ProbeOnce, blackhole: BlackHole) -> None:
    started = time.monotonic()
    result = await probe_once(grpc_probe(blackhole.port, timeout="500ms"))
    assert result.reason is Reason.TIMEOUT and time.monotonic() - started < 1.5, result.message


async def test_tls(probe_once: ProbeOnce, tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    server = await start_server(tls=cert)
    await server.set("", Serving.SERVING)
    try:
        trusted = await probe_once(grpc_probe(server.port, tls=True, ca_file=str(cert.cert), server_name="localhost"))
        untrusted = await probe_once(grpc_probe(server.port, tls=True))  # the system roots do not know it
        wrong_name = await probe_once(grpc_probe(server.port, tls=True, ca_file=str(cert.cert), server_name="db.test"))
        plain = await probe_once(grpc_probe(server.port, timeout="1s"))  # plaintext to a TLS port
    finally:
        await server.server.stop(None)
    assert trusted.status is Status.OK, trusted.message
    assert (untrusted.reason, untrusted.message) == (Reason.TLS, "certificate verify failed: self signed certificate")
    assert (wrong_name.reason, wrong_name.message) == (
        Reason.TLS,
        "certificate verify failed: it does not name the server",
    )
    assert plain.status is Status.CRITICAL


async def test_pool_reuses_the_channel(grpc_server: HealthServer) -> None:
    from probe_agent.config.loader import parse_config
    from probe_agent.core.redact import Redactor
    from probe_agent.runtime.runner import ProbeHandle, run_probe

    config = parse_config(
        f"probes:\n  - {{name: g, type: grpc, host: 127.0.0.1, port: {grpc_server.port}, pool: true}}\n", env={}
    )
    handle = ProbeHandle.build(config.probes[0], Redactor(config.secrets))
    try:
        first = await run_probe(handle)
        channel = handle.probe._channel  # type: ignore[attr-defined]
        second = await run_probe(handle)
        assert channel is not None and handle.probe._channel is channel  # type: ignore[attr-defined]
        await grpc_server.server.stop(None)  # a failed run drops the channel; the next opens a new one
        third = await run_probe(handle)
        assert handle.probe._channel is None  # type: ignore[attr-defined]
    finally:
        await handle.aclose()
    assert first.status is second.status is Status.OK and third.status is Status.CRITICAL


def test_missing_tls_file_names_the_field(tmp_path: Path) -> None:
    from probe_agent.config.loader import parse_config
    from probe_agent.runtime.runner import build_handles

    config = parse_config(
        f"probes:\n  - {{name: t, type: grpc, host: h, port: 1, tls: true, ca_file: {tmp_path}/missing.pem}}\n", env={}
    )
    with pytest.raises(ConfigError) as info:
        build_handles(config)
    assert "probe 't': ca_file: cannot load" in "\n".join(info.value.problems)
