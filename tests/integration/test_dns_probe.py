"""DNS probe against a real dnsmasq on a private loopback port (Debian's dnsmasq-base,
installed by scripts/bootstrap.sh --test), serving probe.test authoritatively."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from probe_agent.core.errors import ConfigError, Reason
from probe_agent.core.results import Status
from tests.conftest import ProbeOnce
from tests.helpers.netfaults import free_port
from tests.helpers.servers import PrivateDnsmasq, have

SERIAL = 2026112301


class ZoneDnsmasq(PrivateDnsmasq):
    """probe.test served authoritatively: A, AAAA, MX and SOA records."""

    def start(self) -> ZoneDnsmasq:
        self.start_with(
            "--auth-server=ns.probe.test,127.0.0.1",
            "--auth-zone=probe.test",
            f"--auth-soa={SERIAL},hostmaster.probe.test",
            "--host-record=web.probe.test,127.0.0.10,::10",
            "--host-record=web.probe.test,127.0.0.11",
            "--mx-host=probe.test,mail.probe.test,10",
        )
        return self


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[ZoneDnsmasq]:
    if not have("dnsmasq"):
        pytest.skip("dnsmasq not installed (Debian package dnsmasq-base; scripts/bootstrap.sh --test)")
    server = ZoneDnsmasq().start()
    yield server
    server.cleanup()


def dns_probe(dnsmasq: PrivateDnsmasq, **fields: object) -> dict[str, object]:
    return {"type": "dns", "server": "127.0.0.1", "port": dnsmasq.port, "query_name": "web.probe.test", **fields}


async def test_a_record(probe_once: ProbeOnce, dnsmasq: PrivateDnsmasq) -> None:
    result = await probe_once(dns_probe(dnsmasq, answer_matches=[r"IN\s+A\s+127\.0\.0\.10$"]))
    assert result.status is Status.OK, result.message
    assert result.values["answer_rrs"] == 2 and result.values["authority_rrs"] >= 1
    assert "127.0.0.10" in result.details["answers"] and result.details["rcode"] == "NOERROR"
    assert 0 < result.phases["request"] < 1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_transports_and_types(probe_once: ProbeOnce, dnsmasq: PrivateDnsmasq, transport: str) -> None:
    aaaa = await probe_once(dns_probe(dnsmasq, query_type="aaaa", transport_protocol=transport))
    mx = await probe_once(
        dns_probe(
            dnsmasq,
            query_name="probe.test",
            query_type="MX",
            answer_matches=["MX 10 mail"],
            transport_protocol=transport,
        )
    )
    soa = await probe_once(dns_probe(dnsmasq, query_name="probe.test", query_type="SOA", transport_protocol=transport))
    assert (aaaa.status, mx.status, soa.status) == (Status.OK,) * 3, (aaaa.message, mx.message, soa.message)
    assert aaaa.values["answer_rrs"] == 1 and "::10" in aaaa.details["answers"]
    assert soa.values["serial"] == SERIAL


async def test_nxdomain_expected_or_not(probe_once: ProbeOnce, dnsmasq: PrivateDnsmasq) -> None:
    gone = await probe_once(dns_probe(dnsmasq, query_name="retired.probe.test", valid_rcodes=["NXDOMAIN"]))
    missing = await probe_once(dns_probe(dnsmasq, query_name="retired.probe.test"))
    assert gone.status is Status.OK, gone.message
    assert (missing.status, missing.reason) == (Status.CRITICAL, Reason.ASSERTION)
    assert missing.message == "rcode NXDOMAIN, expected NOERROR"


async def test_answer_checks_name_what_failed(probe_once: ProbeOnce, dnsmasq: PrivateDnsmasq) -> None:
    unmatched = await probe_once(dns_probe(dnsmasq, answer_matches=[r"10\.1\.2\.3"]))
    forbidden = await probe_once(dns_probe(dnsmasq, answer_not_matches=[r"127\.0\.0\.11"]))
    too_few = await probe_once(dns_probe(dnsmasq, min_answers=3))
    no_data = await probe_once(dns_probe(dnsmasq, query_type="TXT"))  # NOERROR, but no TXT record
    assert unmatched.message == r"no answer record matches /10\.1\.2\.3/"
    assert forbidden.message == r"answer record 'web.probe.test. 600 IN A 127.0.0.11' matches /127\.0\.0\.11/"
    assert too_few.message == "2 answer records for A web.probe.test, expected at least 3"
    assert no_data.message == "0 answer records for TXT web.probe.test, expected at least 1"
    assert all(r.reason is Reason.ASSERTION for r in (unmatched, forbidden, too_few, no_data))


async def test_silent_server_times_out_within_the_deadline(probe_once: ProbeOnce) -> None:
    started = time.monotonic()
    result = await probe_once(
        {"type": "dns", "server": "127.0.0.1", "port": free_port(), "query_name": "a.test", "timeout": "500ms"}
    )
    assert result.reason is Reason.TIMEOUT and time.monotonic() - started < 2, result.message


async def test_tcp_refused(probe_once: ProbeOnce) -> None:
    result = await probe_once(
        {"type": "dns", "server": "127.0.0.1", "port": free_port(), "query_name": "a.test", "transport_protocol": "tcp"}
    )
    assert result.reason is Reason.CONNECT, result.message


class GarbageDns(asyncio.DatagramProtocol):
    """Answers every query with bytes that are not a DNS message."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"\x00\x01garbage", addr)  # type: ignore[attr-defined]


@pytest.fixture
async def garbage_dns() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(GarbageDns, local_addr=("127.0.0.1", 0))
    yield transport.get_extra_info("sockname")[1]
    transport.close()


async def test_malformed_answer_is_a_protocol_failure(probe_once: ProbeOnce, garbage_dns: int) -> None:
    result = await probe_once({"type": "dns", "server": "127.0.0.1", "port": garbage_dns, "query_name": "a.test"})
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.PROTOCOL), result.message
    assert result.message.startswith("malformed DNS answer")


async def test_server_by_name_is_resolved_each_run(probe_once: ProbeOnce, dnsmasq: PrivateDnsmasq) -> None:
    result = await probe_once(dns_probe(dnsmasq, server="localhost"))
    unknown = await probe_once(dns_probe(dnsmasq, server="no-such-host.invalid"))
    assert result.status is Status.OK and "resolve" in result.phases, result.message
    assert (unknown.reason, unknown.message) == (
        Reason.CONNECT,
        "cannot resolve the DNS server's name no-such-host.invalid",
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"query_type": "AAAAA"}, "query_type: Value error, unknown record type 'AAAAA'"),
        ({"valid_rcodes": ["NOPE"]}, "valid_rcodes: Value error, unknown rcode 'NOPE'"),
        ({"query_name": "a..b"}, "query_name: Value error, invalid DNS name 'a..b'"),
        ({"transport_protocol": "quic"}, "transport_protocol: Input should be 'udp' or 'tcp'"),
    ],
)
async def test_config_errors_name_the_field(probe_once: ProbeOnce, fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        await probe_once({"type": "dns", "server": "127.0.0.1", "query_name": "a.test", **fields})
    text = "\n".join(info.value.problems).replace("Value error, ", "")
    assert problem.replace("Value error, ", "") in text, text
