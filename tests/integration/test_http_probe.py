"""HTTP probe against real aiohttp servers and hostile TCP peers on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from probe_agent.core.errors import Reason
from probe_agent.core.results import Status
from tests.conftest import ProbeOnce, ServeApp
from tests.helpers.certs import make_cert
from tests.helpers.netfaults import HostileServer, free_port


def shop_like_app() -> web.Application:
    async def ready(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "checks": {"db": {"status": "up"}}, "items": [1, 2]})

    async def degraded(_r: web.Request) -> web.Response:
        return web.json_response({"status": "degraded"}, status=503)

    async def redirect(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/ready")

    async def loop(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def big(_r: web.Request) -> web.Response:
        return web.Response(body=b"z" * 200_000)

    async def echo_auth(r: web.Request) -> web.Response:
        return web.json_response({"auth": r.headers.get("Authorization"), "method": r.method, "body": await r.text()})

    async def text(_r: web.Request) -> web.Response:
        return web.Response(text="service version 1.2.3 healthy")

    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/degraded", degraded)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    app.router.add_route("*", "/echo", echo_auth)
    app.router.add_get("/text", text)
    return app


async def test_readiness_json_ok_with_phases(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    url = (await serve_app(shop_like_app())).replace("127.0.0.1", "localhost")
    result = await probe_once(
        {
            "type": "http",
            "url": f"{url}/ready",
            "expect_json": {"status": "ok", "checks.db.status": "up", "items[1]": 2},
        }
    )
    assert result.status is Status.OK, result.message
    assert result.values["status_code"] == 200
    assert list(result.phases) == ["resolve", "connect", "tls", "processing", "transfer"]  # blackbox_exporter's, always
    assert result.phases["tls"] == 0 and result.phases["resolve"] > 0  # plain http to a name
    assert 0 < sum(result.phases.values()) <= result.duration


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"expect_json": {"status": "ready"}}, 'JSON status is "ok", expected "ready"'),
        ({"expect_json": {"checks.cache": "up"}}, "JSON path checks.cache not found in body"),
        ({"body_contains": "maintenance"}, "body does not contain 'maintenance'"),
        ({"body_regex": "version [0-9]+\\.x"}, "body does not match /version [0-9]+\\.x/"),
    ],
)
async def test_body_expectations_fail_with_assertion(
    probe_once: ProbeOnce, serve_app: ServeApp, extra: dict[str, object], message: str
) -> None:
    url = await serve_app(shop_like_app())
    path = "/text" if "body_contains" in extra or "body_regex" in extra else "/ready"
    result = await probe_once({"type": "http", "url": url + path, **extra})
    assert (result.status, result.reason, result.message) == (Status.CRITICAL, Reason.ASSERTION, message)


async def test_body_regex_and_contains_pass(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    url = await serve_app(shop_like_app())
    result = await probe_once(
        {"type": "http", "url": url + "/text", "body_contains": "healthy", "body_regex": r"version \d+\.\d+"}
    )
    assert result.status is Status.OK


async def test_status_outside_expected(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    url = await serve_app(shop_like_app())
    result = await probe_once({"type": "http", "url": url + "/degraded"})
    assert result.reason is Reason.ASSERTION
    assert result.message == "status 503, expected 200-399"
    assert result.values["status_code"] == 503  # the value survives the failure
    result = await probe_once({"type": "http", "url": url + "/degraded", "expect_status": ["5xx"]})
    assert result.status is Status.OK


async def test_redirects_followed_or_not(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    url = await serve_app(shop_like_app())
    result = await probe_once({"type": "http", "url": url + "/redirect", "expect_json": {"status": "ok"}})
    assert result.status is Status.OK and result.values["redirects"] == 1
    result = await probe_once(
        {"type": "http", "url": url + "/redirect", "follow_redirects": False, "expect_status": [200]}
    )
    assert result.message == "status 302, expected 200"
    result = await probe_once({"type": "http", "url": url + "/loop"})
    assert result.reason is Reason.PROTOCOL and result.message.startswith("too many redirects")


async def test_method_headers_and_body_are_sent(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    url = await serve_app(shop_like_app())
    result = await probe_once(
        {
            "type": "http",
            "url": url + "/echo",
            "method": "post",
            "body": "ping",
            "headers": {"Authorization": "Bearer sekrit-token-1"},
            "expect_json": {"auth": "Bearer sekrit-token-1", "method": "POST", "body": "ping"},
        }
    )
    assert result.status is Status.OK, result.message


async def test_body_over_cap_fails(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    url = await serve_app(shop_like_app())
    result = await probe_once({"type": "http", "url": url + "/big", "max_body_bytes": 100_000})
    assert (result.reason, result.message) == (
        Reason.PROTOCOL,
        "response body of 200000 bytes exceeds max_body_bytes 100000",
    )


@pytest.mark.parametrize(
    ("mode", "reason", "message_start"),
    [
        ("blackhole", Reason.TIMEOUT, "no answer within 1s"),
        ("drip", Reason.TIMEOUT, "no answer within 1s"),
        ("reset", Reason.CONNECT, "connection reset by peer"),
        ("huge", Reason.PROTOCOL, "response body exceeds max_body_bytes 1048576"),
    ],
)
async def test_hostile_targets_fail_within_deadline(
    probe_once: ProbeOnce, mode: str, reason: Reason, message_start: str
) -> None:
    async with HostileServer(mode) as server:
        start = time.monotonic()
        result = await probe_once({"type": "http", "url": f"http://127.0.0.1:{server.port}/", "timeout": "1s"})
        elapsed = time.monotonic() - start
    assert result.status is Status.CRITICAL
    assert result.reason is reason, result.message
    assert result.message.startswith(message_start), result.message
    assert elapsed < 1.5


async def test_refused_port(probe_once: ProbeOnce) -> None:
    port = free_port()
    result = await probe_once({"type": "http", "url": f"http://127.0.0.1:{port}/health"})
    assert result.reason is Reason.CONNECT
    assert result.message == f"cannot connect to 127.0.0.1:{port}: connection refused"


async def test_unresolvable_host(probe_once: ProbeOnce, monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine's DNS server is not on loopback and tests must not leave it,
    # so the resolver answers NXDOMAIN here as a real one would for .invalid.
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host == "shop.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    result = await probe_once({"type": "http", "url": "http://shop.invalid/health"})
    assert (result.reason, result.message) == (Reason.CONNECT, "cannot resolve host shop.invalid")


async def test_a_name_with_several_addresses_tries_the_next_when_one_refuses(
    probe_once: ProbeOnce, serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dual-stack name whose first address has nothing listening (localhost's ::1 beside a
    # server bound to 127.0.0.1): the probe connects as curl and browsers do, to the next one.
    url = await serve_app(shop_like_app())
    port = int(url.rsplit(":", 1)[1])
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host == "shop.test":
            stream = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
            return [(*stream, ("127.0.0.3", port)), (*stream, ("127.0.0.1", port))]
        return await real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    result = await probe_once({"type": "http", "url": f"http://shop.test:{port}/ready"})
    assert result.status is Status.OK, result.message
    from probe_agent.probes.clients.netinfo import fnv32a

    assert result.values["ip_addr_hash"] == fnv32a(bytes([127, 0, 0, 1]))  # the one it reached


async def test_proxy_variables_in_the_agents_environment_are_not_followed(
    probe_once: ProbeOnce, serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A probe measures the path to its target: an http_proxy left in a pod's or a shell's
    # environment must not send it elsewhere (libcurl honours these by default; aiohttp did not)
    url = await serve_app(shop_like_app())
    for name in ("http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    result = await probe_once({"type": "http", "url": url + "/ready"})
    assert result.status is Status.OK, result.message


async def test_a_compressed_body_is_limited_by_its_decoded_size(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    # 64 MiB of zeros gzip to 64 kB: the limit is on what the body becomes, as it is decoded
    import gzip

    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)

    async def serve_bomb(_r: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    app = web.Application()
    app.router.add_get("/", serve_bomb)
    url = await serve_app(app)
    started = time.monotonic()
    result = await probe_once({"type": "http", "url": url + "/", "timeout": "5s"})
    assert (result.reason, result.message) == (Reason.PROTOCOL, "response body exceeds max_body_bytes 1048576")
    assert time.monotonic() - started < 2


def server_tls(tmp_path: Path, expired: bool = False, client_ca: Path | None = None) -> tuple[ssl.SSLContext, Path]:
    cert = make_cert(tmp_path, "server", days_valid=20, expired=expired)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert, cert.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context, cert.cert


async def test_self_signed_cert_fails_verification(probe_once: ProbeOnce, serve_app: ServeApp, tmp_path: Path) -> None:
    context, _ = server_tls(tmp_path)
    url = await serve_app(shop_like_app(), context)
    result = await probe_once({"type": "http", "url": url + "/ready"})
    assert result.reason is Reason.TLS
    assert "self-signed certificate" in result.message


async def test_trusted_cert_reports_expiry_and_tls_phase(
    probe_once: ProbeOnce, serve_app: ServeApp, tmp_path: Path
) -> None:
    context, ca = server_tls(tmp_path)
    url = await serve_app(shop_like_app(), context)
    result = await probe_once(
        {
            "type": "http",
            "url": url + "/ready",
            "ca_file": str(ca),
            "thresholds": {"cert_expiry_days": {"warning": "< 30", "critical": "< 7"}},
        }
    )
    assert result.status is Status.WARNING, result.message
    assert 19.9 < result.values["cert_expiry_days"] <= 20
    assert result.values["ssl_earliest_cert_expiry"] == pytest.approx(time.time() + 20 * 86400, abs=3700)
    assert result.phases["tls"] > 0 and result.phases["connect"] > 0


async def test_expired_cert(probe_once: ProbeOnce, serve_app: ServeApp, tmp_path: Path) -> None:
    context, ca = server_tls(tmp_path, expired=True)
    url = await serve_app(shop_like_app(), context)
    result = await probe_once({"type": "http", "url": url + "/ready", "ca_file": str(ca)})
    assert result.reason is Reason.TLS and "certificate has expired" in result.message
    # With verification off the probe passes, and the expiry still shows the problem.
    result = await probe_once(
        {
            "type": "http",
            "url": url + "/ready",
            "tls_verify": False,
            "thresholds": {"cert_expiry_days": {"critical": "< 7"}},
        }
    )
    assert result.status is Status.CRITICAL and result.reason is None
    assert result.values["cert_expiry_days"] < 0


async def test_client_certificate(probe_once: ProbeOnce, serve_app: ServeApp, tmp_path: Path) -> None:
    client = make_cert(tmp_path, "client")
    context, ca = server_tls(tmp_path, client_ca=client.cert)
    url = await serve_app(shop_like_app(), context)
    result = await probe_once(
        {
            "type": "http",
            "url": url + "/ready",
            "ca_file": str(ca),
            "cert_file": str(client.cert),
            "key_file": str(client.key),
        }
    )
    assert result.status is Status.OK, result.message
    result = await probe_once({"type": "http", "url": url + "/ready", "ca_file": str(ca)})
    assert result.status is Status.CRITICAL and result.reason in (Reason.TLS, Reason.PROTOCOL, Reason.CONNECT)


def test_tls_phase_and_expiry_under_uvloop(tmp_path: Path) -> None:
    """The daemon runs on uvloop, whose TLS layer is its own: timing and expiry must work there too."""
    uvloop = pytest.importorskip("uvloop")
    from aiohttp import web as aioweb

    from probe_agent.config.loader import parse_config
    from probe_agent.core.redact import Redactor
    from probe_agent.probes import close_shared
    from probe_agent.runtime.runner import ProbeHandle, run_probe

    async def scenario() -> tuple[str, object]:
        context, ca = server_tls(tmp_path)
        runner = aioweb.AppRunner(shop_like_app())
        await runner.setup()
        await aioweb.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        port = runner.addresses[0][1]
        config = parse_config(
            f"probes: [{{name: a, type: http, url: 'https://127.0.0.1:{port}/ready', ca_file: '{ca}'}}]", env={}
        )
        handle = ProbeHandle.build(config.probes[0], Redactor())
        try:
            return type(asyncio.get_running_loop()).__module__, await run_probe(handle)
        finally:
            await handle.aclose()
            await close_shared()
            await runner.cleanup()

    loop_module, result = uvloop.run(scenario())
    assert loop_module.startswith("uvloop")
    assert result.status is Status.OK, result.message
    assert result.phases["tls"] > 0 and 19.9 < result.values["cert_expiry_days"] <= 20


@pytest.mark.parametrize("field", ["ca_file", "cert_file"])
async def test_a_tls_file_swapped_for_a_fifo_after_load_does_not_hold_the_loop(
    serve_app: ServeApp, tmp_path: Path, field: str
) -> None:
    """The files a probe names are read at load, bounded and never from a FIFO; a run must not
    open them again on the loop (a FIFO there would hold every probe until someone writes to it)."""
    import os
    import threading

    from probe_agent.config.loader import parse_config
    from probe_agent.probes.types.http import HttpProbe
    from probe_agent.runtime.runner import build_handles, run_probe

    client = make_cert(tmp_path, "client")
    context, ca = server_tls(tmp_path, client_ca=client.cert)
    url = await serve_app(shop_like_app(), context)
    named = {"ca_file": tmp_path / "ca-copy.pem", "cert_file": tmp_path / "client-copy.pem"}
    named["ca_file"].write_bytes(ca.read_bytes())
    named["cert_file"].write_bytes(client.cert.read_bytes())
    probe = {"name": "web", "type": "http", "url": url + "/ready", "timeout": "2s", "key_file": str(client.key)}
    probe |= {name: str(path) for name, path in named.items()}
    (handle,) = build_handles(parse_config(yaml.safe_dump({"probes": [probe]}), env={}))
    swapped = named[field]
    data = swapped.read_bytes()
    swapped.unlink()
    os.mkfifo(swapped)

    def unblock() -> None:  # if the run opens the FIFO, feed it after 3 s so the test ends
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline + 5:
            try:
                fd = os.open(swapped, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody reading yet
                time.sleep(0.05)
                continue
            time.sleep(max(deadline - time.monotonic(), 0))
            os.write(fd, data)
            os.close(fd)
            return

    feeder = threading.Thread(target=unblock, daemon=True)
    feeder.start()
    try:
        started = time.monotonic()
        result = await run_probe(handle)
        elapsed = time.monotonic() - started
    finally:
        await HttpProbe.aclose_shared()
    assert elapsed < 1.5, f"the run took {elapsed:.1f}s: it opened the FIFO"
    assert result.status is Status.OK, result.message


async def test_a_ca_file_replaced_in_place_counts_from_the_next_build(serve_app: ServeApp, tmp_path: Path) -> None:
    """A renewed or revoked CA in the same file takes effect at the next reload (libcurl keeps a
    CA store built from a path for 24 hours, so the probe must not hand it the path)."""
    import os

    from probe_agent.config.loader import parse_config
    from probe_agent.probes.types.http import HttpProbe
    from probe_agent.runtime.runner import build_handles, run_probe

    context, ca = server_tls(tmp_path)
    other = make_cert(tmp_path, "other")
    url = await serve_app(shop_like_app(), context)
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(ca.read_bytes())
    text = yaml.safe_dump({"probes": [{"name": "web", "type": "http", "url": url + "/ready", "ca_file": str(trusted)}]})
    try:
        (first,) = build_handles(parse_config(text, env={}))
        assert (await run_probe(first)).status is Status.OK
        trusted.write_bytes(other.cert.read_bytes())  # the server's CA is no longer trusted
        os.utime(trusted, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        (rebuilt,) = build_handles(parse_config(text, env={}))
        result = await run_probe(rebuilt)
    finally:
        await HttpProbe.aclose_shared()
    assert result.reason is Reason.TLS, result.message


async def test_probes_share_one_tls_context_per_setting(tmp_path: Path) -> None:
    """A TLS context costs ~30 ms of CPU and ~0.85 MB. libcurl verifies with its own, so a probe
    builds one only to check its named files at load, once for every probe of that setting."""
    from probe_agent.config.loader import parse_config
    from probe_agent.probes.types.http import HttpConfig, HttpProbe

    _, ca = server_tls(tmp_path)
    probes: list[dict[str, Any]] = [
        {"name": f"p{i}", "type": "http", "url": f"https://127.0.0.1:{1000 + i}/"} for i in range(200)
    ]
    probes += [
        {"name": f"ca{i}", "type": "http", "url": f"https://127.0.0.1:{2000 + i}/", "ca_file": str(ca)}
        for i in range(3)
    ]
    probes += [{"name": "plain", "type": "http", "url": "http://127.0.0.1:1/", "follow_redirects": False}]
    config = parse_config(yaml.safe_dump({"probes": probes}), env={})
    built = [HttpProbe(c) for c in config.probes if isinstance(c, HttpConfig)]
    assert len(built) == len(config.probes)
    contexts = [p._files_checked for p in built]
    assert all(c is None for c in contexts[:200])  # the system's trust: nothing to check at load
    assert len({id(c) for c in contexts[200:203]}) == 1 and contexts[200] is not None
    assert contexts[203] is None


async def test_shared_context_keeps_each_runs_own_handshake(
    probe_once: ProbeOnce, serve_app: ServeApp, tmp_path: Path
) -> None:
    """Two probes on one shared context, at once, against certificates of different lifetimes."""
    short, long = make_cert(tmp_path, "short", days_valid=5), make_cert(tmp_path, "long", days_valid=90)
    urls = []
    for cert in (short, long):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert.cert, cert.key)
        urls.append(await serve_app(shop_like_app(), context))
    results = await asyncio.gather(
        *(probe_once({"type": "http", "url": url + "/ready", "tls_verify": False}) for url in urls * 5)
    )
    for i, result in enumerate(results):
        days = 5 if i % 2 == 0 else 90
        assert days - 0.1 < result.values["cert_expiry_days"] <= days, (i, result.values)
        assert result.phases["tls"] > 0


async def test_json_nested_past_the_stack_is_the_targets_fault(probe_once: ProbeOnce, serve_app: ServeApp) -> None:
    async def deep(_request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 200_000 + b"]" * 200_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", deep)
    base = await serve_app(app)
    result = await probe_once({"type": "http", "url": base + "/", "expect_json": {"status": "ok"}})
    assert result.status is Status.CRITICAL and result.reason is Reason.ASSERTION, result
    assert result.message == "body is not valid JSON"


async def test_a_redirect_to_a_url_with_a_token_is_redacted_in_the_run_details(
    serve_app: ServeApp, probe_once: ProbeOnce
) -> None:
    # The details of a run (final_url after redirects) reach /health, `check --format json`
    # and the status page: the token an identity provider put in the URL must not.
    async def start(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/landing?access_token=tok-4f9e2a7c&state=ok")

    async def landing(_request: web.Request) -> web.Response:
        return web.Response(text="welcome")

    app = web.Application()
    app.router.add_get("/start", start)
    app.router.add_get("/landing", landing)
    base = await serve_app(app)
    result = await probe_once({"type": "http", "url": f"{base}/start"})
    assert result.status is Status.OK, result.message
    assert result.details["final_url"].startswith(f"{base}/landing?access_token=")
    assert "tok-4f9e2a7c" not in json.dumps(result.to_dict())
