"""The libcurl engine (probe_agent/probes/clients/curlengine.py) against real servers on loopback:
answers, hostile and hung targets, TLS, and nothing left open."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pycurl
import pytest
from aiohttp import web

from probe_agent.core.budget import ReadBudget
from probe_agent.core.errors import ProbeError, Reason
from probe_agent.probes.clients.curlengine import (
    MAX_REDIRECTS,
    CurlEngine,
    CurlFailure,
    Exchange,
    TooManyRedirects,
    close_engine,
    fetch,
    translate_failure,
)
from tests.helpers.certs import make_cert
from tests.helpers.netfaults import BlackHole, HostileServer, SpewServer


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, runner.addresses[0][1]


def shop() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(
            text=f"{request.method} {request.headers.get('X-Probe', '-')} {body.decode()}",
            headers={"X-Seen": "yes"},
        )

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 100_000)

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    return app


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    runner, port = await serve(shop())
    yield port
    await runner.cleanup()


@pytest.fixture
async def curl() -> AsyncIterator[CurlEngine]:
    engine = CurlEngine()
    yield engine
    engine.close()


async def test_an_answer_with_its_status_headers_body_address_and_phases(curl: CurlEngine, http_port: int) -> None:
    started = time.perf_counter()
    answer = await curl.exchange(
        Exchange(f"http://127.0.0.1:{http_port}/echo", method="POST", headers=[("X-Probe", "p1")], body=b"hi")
    )
    wall = time.perf_counter() - started
    assert answer.status == 200 and answer.http_version == 1.1
    assert answer.status_line == "HTTP/1.1 200 OK"
    assert answer.body == b"POST p1 hi"
    assert ("X-Seen", "yes") in answer.headers
    assert answer.address == "127.0.0.1"
    assert answer.tls_version is None and answer.cipher is None
    assert list(answer.phases) == ["resolve", "connect", "tls", "processing", "transfer"]
    assert answer.phases["tls"] == 0.0 and answer.phases["connect"] > 0
    assert 0 < sum(answer.phases.values()) <= wall


async def test_every_exchange_is_a_fresh_connection_closed_after_it(curl: CurlEngine) -> None:
    connections: set[tuple[str, int]] = set()

    async def peer(request: web.Request) -> web.Response:
        connections.add(request.transport.get_extra_info("peername") if request.transport else ("?", 0))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", peer)
    runner, port = await serve(app)
    try:
        assert (await curl.exchange(Exchange(f"http://127.0.0.1:{port}/"))).status == 200
        await asyncio.sleep(0.05)
        before = open_fds()
        for _ in range(3):
            assert (await curl.exchange(Exchange(f"http://127.0.0.1:{port}/"))).status == 200
        await asyncio.sleep(0.05)
        kept_open = open_fds() - before  # none: a connection is not kept for the next
    finally:
        await runner.cleanup()
    assert len(connections) == 4
    assert kept_open <= 0


async def test_many_exchanges_at_once(curl: CurlEngine, http_port: int) -> None:
    answers = await asyncio.gather(*(curl.exchange(Exchange(f"http://127.0.0.1:{http_port}/big")) for _ in range(200)))
    assert all(a.status == 200 and len(a.body) == 100_000 for a in answers)
    assert curl.in_flight == 0


async def test_a_server_that_never_stops_sending_is_cut_at_the_budget(curl: CurlEngine) -> None:
    spew = SpewServer(b"HTTP/1.1 200 OK\r\n\r\n")  # a body that lasts until the connection closes
    budget = ReadBudget(1 << 20)
    budget.start(None)
    try:
        with pytest.raises(CurlFailure) as failure:
            async with asyncio.timeout(10):
                await curl.exchange(Exchange(f"http://127.0.0.1:{spew.port}/", max_body=64 << 20), budget)
    finally:
        spew.close()
    assert failure.value.over == "budget" and failure.value.code == pycurl.E_WRITE_ERROR
    assert budget.exceeded and budget.used <= (1 << 20) + (1 << 17)  # one read past the limit at most
    assert budget.last_byte > 0


async def test_a_body_over_max_body_is_cut_and_not_kept(curl: CurlEngine, http_port: int) -> None:
    spew = SpewServer(b"HTTP/1.1 200 OK\r\n\r\n")
    try:
        with pytest.raises(CurlFailure) as failure:
            await curl.exchange(Exchange(f"http://127.0.0.1:{spew.port}/", max_body=1000))
    finally:
        spew.close()
    assert failure.value.over == "body"
    translated = translate_failure(failure.value, 1000)
    assert translated is not None and translated.message == "response body exceeds max_body_bytes 1000"


async def test_a_body_announced_over_max_body_fails_before_it_is_read(curl: CurlEngine, http_port: int) -> None:
    budget = ReadBudget(1 << 20)
    budget.start(None)
    with pytest.raises(CurlFailure) as failure:
        await curl.exchange(Exchange(f"http://127.0.0.1:{http_port}/big", max_body=1000), budget)
    assert (failure.value.over, failure.value.declared) == ("declared", 100_000)
    assert budget.used < 1000  # the headers only
    translated = translate_failure(failure.value, 1000)
    assert translated is not None
    assert translated.message == "response body of 100000 bytes exceeds max_body_bytes 1000"
    head = await curl.exchange(Exchange(f"http://127.0.0.1:{http_port}/big", method="HEAD", max_body=1000))
    assert head.status == 200 and head.body == b""  # HEAD: the length announces nothing to read


async def test_headers_without_end_are_cut(curl: CurlEngine) -> None:
    spew = SpewServer(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 100 + b"\r\n")
    try:
        with pytest.raises(CurlFailure):  # random bytes after a header: a header too long, or garbage
            async with asyncio.timeout(10):
                await curl.exchange(Exchange(f"http://127.0.0.1:{spew.port}/"), ReadBudget(1 << 20))
    finally:
        spew.close()


async def test_refused_and_garbage_are_failures_with_curls_codes(curl: CurlEngine) -> None:
    hole = BlackHole()
    port = hole.port
    hole.close()  # nothing listens there now
    with pytest.raises(CurlFailure) as refused:
        await curl.exchange(Exchange(f"http://127.0.0.1:{port}/"))
    assert refused.value.code == pycurl.E_COULDNT_CONNECT
    async with HostileServer("banner:SSH-2.0-OpenSSH_9.2\r\n") as garbage:
        with pytest.raises(CurlFailure) as failed:
            async with asyncio.timeout(10):
                await curl.exchange(Exchange(f"http://127.0.0.1:{garbage.port}/"))
    assert failed.value.code in (1, 8, 52, 56), failed.value  # unsupported / weird reply / nothing / recv


async def test_a_cancelled_exchange_leaves_nothing_open(curl: CurlEngine, http_port: int) -> None:
    hole = BlackHole()
    try:
        await curl.exchange(Exchange(f"http://127.0.0.1:{http_port}/echo"))  # the engine's own fds exist
        before = open_fds()
        for target in (f"http://127.0.0.1:{hole.port}/", f"http://127.0.0.1:{http_port}/slow"):
            for _ in range(25):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await curl.exchange(Exchange(target))
        await asyncio.sleep(0.1)
        assert curl.in_flight == 0
        assert open_fds() <= before
        # and the engine still works
        assert (await curl.exchange(Exchange(f"http://127.0.0.1:{http_port}/echo"))).status == 200
    finally:
        hole.close()


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    cert = make_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert, cert.key)
    runner, port = await serve(shop(), context)
    yield port, cert.cert
    await runner.cleanup()


async def test_tls_verified_against_a_ca_file_with_the_chain(curl: CurlEngine, https: tuple[int, Path]) -> None:
    port, ca = https
    with pytest.raises(CurlFailure) as refused:  # not signed by anything the system trusts
        await curl.exchange(Exchange(f"https://localhost:{port}/echo"))
    assert refused.value.code == pycurl.E_PEER_FAILED_VERIFICATION
    answer = await curl.exchange(Exchange(f"https://localhost:{port}/echo", ca_file=str(ca), certificates=True))
    assert answer.status == 200 and answer.phases["tls"] > 0
    # the session as Python's ssl names it, asked of the same server
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl.create_default_context(cafile=ca), server_hostname="localhost"
    )
    session = writer.get_extra_info("ssl_object")
    expected = (session.version(), session.cipher()[0])
    writer.close()
    assert (answer.tls_version, answer.cipher) == expected
    assert len(answer.certificates) == 1 and "BEGIN CERTIFICATE" in answer.certificates[0]
    unverified = await curl.exchange(Exchange(f"https://localhost:{port}/echo", verify=False))
    assert unverified.status == 200


async def test_every_exchange_makes_a_full_handshake(curl: CurlEngine, https: tuple[int, Path]) -> None:
    # a resumed TLS session shows no certificate (no expiry, no chain) and times a cheaper
    # handshake than a new client sees: the probe measures what a fresh client meets, each run
    port, ca = https
    for _ in range(3):
        answer = await curl.exchange(Exchange(f"https://localhost:{port}/echo", ca_file=str(ca), certificates=True))
        assert len(answer.certificates) == 1 and answer.tls_version


async def test_the_system_trust_is_pythons_not_the_wheels(
    https: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # pycurl's wheel carries an OpenSSL with its own idea of where CAs are: the engine must trust
    # what Python trusts here, SSL_CERT_FILE included
    port, ca = https
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    engine = CurlEngine()
    try:
        answer = await engine.exchange(Exchange(f"https://localhost:{port}/echo"))
    finally:
        engine.close()
    assert answer.status == 200


async def test_only_http_and_https(curl: CurlEngine, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not for a probe")
    with pytest.raises(CurlFailure) as failure:
        await curl.exchange(Exchange(f"file://{secret}"))
    assert failure.value.code == pycurl.E_UNSUPPORTED_PROTOCOL


def redirector(other_port: list[int]) -> web.Application:
    """/hop/N redirects N times before /echo; /loop forever; /away to another origin; /file to file://."""

    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        raise web.HTTPFound(f"/hop/{left - 1}" if left > 1 else "/echo")

    async def see_other(_request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/echo")

    async def temporary(_request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/echo")

    async def loop(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def away(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{other_port[0]}/auth")

    async def near(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/auth")

    async def auth(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Authorization", "none"))

    async def to_file(_request: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    app = shop()
    app.router.add_get("/hop/{n}", hop)
    app.router.add_post("/see-other", see_other)
    app.router.add_post("/temporary", temporary)
    app.router.add_get("/loop", loop)
    app.router.add_get("/away", away)
    app.router.add_get("/near", near)
    app.router.add_get("/auth", auth)
    app.router.add_get("/file", to_file)
    return app


@pytest.fixture
async def redirects() -> AsyncIterator[int]:
    other: list[int] = []
    first, port = await serve(redirector(other))
    second, other_port = await serve(redirector(other))
    other.append(other_port)
    yield port
    close_engine()
    await first.cleanup()
    await second.cleanup()


async def test_redirects_are_followed_hop_by_hop_with_phases_summed(redirects: int) -> None:
    fetched = await fetch(Exchange(f"http://127.0.0.1:{redirects}/hop/3"))
    assert fetched.answer.status == 200 and fetched.answer.body == b"GET - "
    assert [h.location for h in fetched.hops] == ["/hop/2", "/hop/1", "/echo"]
    assert all(h.status_line == "HTTP/1.1 302 Found" for h in fetched.hops)
    assert fetched.url == f"http://127.0.0.1:{redirects}/echo"
    # four connections, each connect counted
    assert fetched.phases["connect"] > fetched.answer.phases["connect"]
    unfollowed = await fetch(Exchange(f"http://127.0.0.1:{redirects}/hop/3"), follow=False)
    assert unfollowed.answer.status == 302 and unfollowed.hops == []


async def test_see_other_asks_again_with_get_and_307_keeps_the_method(redirects: int) -> None:
    other = await fetch(Exchange(f"http://127.0.0.1:{redirects}/see-other", method="POST", body=b"order"))
    assert other.answer.body == b"GET - "
    kept = await fetch(Exchange(f"http://127.0.0.1:{redirects}/temporary", method="POST", body=b"order"))
    assert kept.answer.body == b"POST - order"


async def test_credentials_stay_with_their_origin(redirects: int) -> None:
    header = [("Authorization", "Bearer s3cret")]
    near = await fetch(Exchange(f"http://127.0.0.1:{redirects}/near", headers=header))
    assert near.answer.body == b"Bearer s3cret"
    away = await fetch(Exchange(f"http://127.0.0.1:{redirects}/away", headers=header))
    assert away.answer.body == b"none"
    in_url = await fetch(Exchange(f"http://user:pw@127.0.0.1:{redirects}/away"))
    assert in_url.answer.body == b"none"
    in_url_near = await fetch(Exchange(f"http://user:pw@127.0.0.1:{redirects}/near"))
    assert in_url_near.answer.body.startswith(b"Basic ")


async def test_a_redirect_loop_and_a_redirect_off_http_fail(redirects: int) -> None:
    with pytest.raises(TooManyRedirects) as looped:
        await fetch(Exchange(f"http://127.0.0.1:{redirects}/loop"))
    assert len(looped.value.hops) == MAX_REDIRECTS + 1
    failure = translate_failure(looped.value)
    assert failure is not None and failure.reason is Reason.PROTOCOL and "too many redirects" in failure.message
    with pytest.raises(ProbeError, match="not http or https"):
        await fetch(Exchange(f"http://127.0.0.1:{redirects}/file"))


async def test_failures_translate_to_reasons(curl: CurlEngine, https: tuple[int, Path]) -> None:
    hole = BlackHole()
    port = hole.port
    hole.close()
    cases = [
        (Exchange(f"http://127.0.0.1:{port}/"), Reason.CONNECT, "cannot connect"),
        (Exchange(f"https://localhost:{https[0]}/"), Reason.TLS, "certificate verify failed"),
    ]
    for exchange, reason, words in cases:
        with pytest.raises(CurlFailure) as failed:
            await curl.exchange(exchange)
        translated = translate_failure(failed.value)
        assert translated is not None and translated.reason is reason and words in translated.message


async def test_an_exchange_without_a_callers_deadline_still_ends(curl: CurlEngine) -> None:
    hole = BlackHole()
    try:
        started = time.monotonic()
        with pytest.raises(CurlFailure) as failure:
            await curl.exchange(Exchange(f"http://127.0.0.1:{hole.port}/", timeout=0.3))
        assert time.monotonic() - started < 5
    finally:
        hole.close()
    assert failure.value.code == pycurl.E_OPERATION_TIMEDOUT
    translated = translate_failure(failure.value)
    assert translated is not None and translated.reason is Reason.TIMEOUT
    assert curl.in_flight == 0


async def test_a_header_with_an_empty_value_is_sent_empty(curl: CurlEngine, http_port: int) -> None:
    # libcurl reads "Name:" as "drop this header": a configured empty value must still be sent
    answer = await curl.exchange(Exchange(f"http://127.0.0.1:{http_port}/echo", headers=[("X-Probe", "")]))
    assert answer.body == b"GET  "
    answer = await curl.exchange(Exchange(f"http://127.0.0.1:{http_port}/echo", headers=[("X-Probe", "  a b ")]))
    assert answer.body == b"GET a b "


async def test_a_post_without_a_body_says_its_length_is_zero(curl: CurlEngine) -> None:
    # nginx and others answer 411 Length Required to a POST that gives no length
    async def length(request: web.Request) -> web.Response:
        assert "Content-Type" not in request.headers  # none was configured, none is made up
        return web.Response(text=request.headers.get("Content-Length", "none"))

    app = web.Application()
    app.router.add_route("*", "/", length)
    runner, port = await serve(app)
    try:
        said = {m: (await curl.exchange(Exchange(f"http://127.0.0.1:{port}/", method=m))).body for m in ("POST", "PUT")}
        got = (await curl.exchange(Exchange(f"http://127.0.0.1:{port}/"))).body
    finally:
        await runner.cleanup()
    assert said == {"POST": b"0", "PUT": b"0"} and got == b"none"
