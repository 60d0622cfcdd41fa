"""TCP probe against real loopback listeners."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

from probe_agent.core.errors import Reason
from probe_agent.core.results import Status
from tests.conftest import ProbeOnce
from tests.helpers.certs import make_cert
from tests.helpers.netfaults import HostileServer, free_port


async def test_connect_ok(probe_once: ProbeOnce) -> None:
    async with HostileServer("blackhole") as server:
        result = await probe_once({"type": "tcp", "host": "127.0.0.1", "port": server.port})
    assert result.status is Status.OK and "connect" in result.phases


async def test_refused(probe_once: ProbeOnce) -> None:
    result = await probe_once({"type": "tcp", "host": "127.0.0.1", "port": free_port()})
    assert (result.reason, result.message) == (Reason.CONNECT, "connection refused")


async def test_banner_expected(probe_once: ProbeOnce) -> None:
    async with HostileServer("banner:220 mail.example.test ESMTP ready\r\n") as server:
        ok = await probe_once({"type": "tcp", "host": "127.0.0.1", "port": server.port, "expect": "220 "})
        regex = await probe_once(
            {"type": "tcp", "host": "127.0.0.1", "port": server.port, "expect_regex": r"^220 \S+ ESMTP"}
        )
    assert ok.status is Status.OK and regex.status is Status.OK
    assert "exchange" in ok.phases


async def test_wrong_banner(probe_once: ProbeOnce) -> None:
    async with HostileServer("banner:554 go away\r\n") as server:
        result = await probe_once(
            {"type": "tcp", "host": "127.0.0.1", "port": server.port, "expect": "220 ", "max_read_bytes": 10}
        )
    assert result.reason is Reason.ASSERTION
    assert result.message == "expected '220 ', read 10 bytes after '554 go awa'"


async def test_send_and_expect_against_echo(probe_once: ProbeOnce) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await probe_once(
            {"type": "tcp", "host": "127.0.0.1", "port": port, "send": "ping\n", "expect": "PING"}
        )
        closed = await probe_once({"type": "tcp", "host": "127.0.0.1", "port": port, "send": "x\n", "expect": "PONG"})
    finally:
        server.close()
        await server.wait_closed()
    assert result.status is Status.OK
    assert closed.message == "expected 'PONG', peer closed the connection after 'X\\n'"


async def test_silent_peer_times_out(probe_once: ProbeOnce) -> None:
    async with HostileServer("blackhole") as server:
        start = time.monotonic()
        result = await probe_once(
            {"type": "tcp", "host": "127.0.0.1", "port": server.port, "expect": "+OK", "timeout": "500ms"}
        )
    assert result.reason is Reason.TIMEOUT and time.monotonic() - start < 1.0


async def test_tls(probe_once: ProbeOnce, tmp_path: Path) -> None:
    cert = make_cert(tmp_path, days_valid=5)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert, cert.key)

    async def greet(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        base = {"type": "tcp", "host": "127.0.0.1", "port": port, "tls": True, "expect": "hello"}
        trusted = await probe_once(
            {**base, "ca_file": str(cert.cert), "thresholds": {"cert_expiry_days": {"warning": "< 7"}}}
        )
        untrusted = await probe_once(base)
    finally:
        server.close()
        await server.wait_closed()
    assert trusted.status is Status.WARNING, trusted.message
    assert trusted.phases["tls"] > 0 and 4.9 < trusted.values["cert_expiry_days"] <= 5
    assert untrusted.reason is Reason.TLS and "self-signed" in untrusted.message
