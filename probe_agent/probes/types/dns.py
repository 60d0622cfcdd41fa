"""DNS probe: ask one server one question, as `dig @server name type` does.

Success: the server answers within the timeout with an rcode in `valid_rcodes`
(default NOERROR), at least `min_answers` answer records (default 1 when
NOERROR is expected, else 0), every `answer_matches` regex matching some answer
record and no `answer_not_matches` regex matching any. Records are matched as
dig prints them: `web.example. 300 IN A 10.0.0.7`. Field names follow
blackbox_exporter's dns module where the meaning is the same.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from typing import Any, Literal

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from pydantic import Field, field_validator, model_validator

from probe_agent.core.errors import ErrorRule, ErrorTable, ProbeError, Reason, did_you_mean
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, ProbeConfig
from probe_agent.schema.fields import Regex

MAX_SHOWN_RECORDS = 5


class DnsConfig(ProbeConfig):
    type: Literal["dns"]
    default_port = 53

    server: str = Field(min_length=1)  # the server to ask: an IP address or a host name
    port: int = Field(0, ge=0, le=65535)
    query_name: str  # the name to look up
    query_type: str = "A"  # A, AAAA, MX, TXT, SOA, SRV, CNAME, NS, PTR...
    transport_protocol: Literal["udp", "tcp"] = "udp"
    recursion_desired: bool = True
    valid_rcodes: list[str] = ["NOERROR"]  # e.g. [NXDOMAIN] to check that a name does not exist
    min_answers: int = Field(0, ge=0)  # default: 1 if NOERROR is valid, else 0
    answer_matches: list[Regex] = []  # each must match at least one answer record
    answer_not_matches: list[Regex] = []  # none may match any answer record

    @field_validator("query_name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f"invalid DNS name {value!r}: {exc}") from None
        return value

    @field_validator("query_type")
    @classmethod
    def _query_type(cls, value: str) -> str:
        try:
            return dns.rdatatype.to_text(dns.rdatatype.from_text(value.upper()))
        except dns.exception.DNSException:
            known = tuple(t.name for t in dns.rdatatype.RdataType)
            raise ValueError(
                f"unknown record type {value!r}{did_you_mean(value.upper(), known)} (A, AAAA, MX, TXT, SOA, SRV, CNAME, NS, PTR...)"
            ) from None

    @field_validator("valid_rcodes")
    @classmethod
    def _rcodes(cls, values: list[str]) -> list[str]:
        checked = []
        for value in values:
            try:
                checked.append(dns.rcode.to_text(dns.rcode.from_text(value.upper())))
            except dns.exception.DNSException:
                raise ValueError(f"unknown rcode {value!r} (NOERROR, NXDOMAIN, SERVFAIL, REFUSED...)") from None
        if not checked:
            raise ValueError("name at least one rcode")
        return checked

    @model_validator(mode="before")
    @classmethod
    def _min_answers(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("min_answers") is None:
            rcodes = data.get("valid_rcodes", ["NOERROR"])
            expects_data = isinstance(rcodes, list) and any(str(r).upper() == "NOERROR" for r in rcodes)
            data = {**data, "min_answers": 1 if expects_data else 0}
        return data

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return {"server": target}

    def target(self) -> str:
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"{host}:{self.port} {self.query_type} {self.query_name}"


ERRORS = ErrorTable(
    ErrorRule(dns.exception.Timeout, Reason.TIMEOUT, "no answer from the DNS server"),
    ErrorRule(
        (dns.message.ShortHeader, dns.message.TrailingJunk, dns.exception.FormError),
        Reason.PROTOCOL,
        "malformed DNS answer: {exc}",
    ),
    ErrorRule(dns.exception.DNSException, Reason.PROTOCOL, "DNS: {exc}"),
)


def record_texts(answer: list[Any]) -> list[str]:
    """Each answer record as one line, as dig prints it."""
    return [line for rrset in answer for line in rrset.to_text().splitlines()]


class DnsProbe(Probe[DnsConfig]):
    config_model = DnsConfig
    example = """\
- name: api-dns
  type: dns
  server: 10.0.0.2
  query_name: api.example.internal
  query_type: A
  answer_matches: ['IN\\s+A\\s+10\\.']
  thresholds:
    duration: {warning: 100ms, critical: 1s}"""
    errors = ERRORS
    failure_reasons = (Reason.TIMEOUT, Reason.CONNECT, Reason.PROTOCOL, Reason.ASSERTION, Reason.INTERNAL)
    phase_metric = "probe_dns_duration_seconds"
    shown_values = ("answer_rrs",)
    values = {
        "answer_rrs": ValueSpec("probe_dns_answer_rrs", "Number of records in the answer section."),
        "authority_rrs": ValueSpec("probe_dns_authority_rrs", "Number of records in the authority section."),
        "additional_rrs": ValueSpec("probe_dns_additional_rrs", "Number of records in the additional section."),
        "serial": ValueSpec("probe_dns_serial", "The SOA serial, when the answer holds a SOA record."),
    }

    def __init__(self, config: DnsConfig):
        super().__init__(config)
        self._address: str | None = None
        try:
            self._address = str(ipaddress.ip_address(config.server))
        except ValueError:
            pass  # a host name: resolved every run, as dig would

    async def _server_address(self, obs: Observation) -> str:
        if self._address is not None:
            return self._address
        start = time.perf_counter()
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                self.config.server, self.config.port, type=socket.SOCK_DGRAM
            )
        except socket.gaierror:
            raise ProbeError(Reason.CONNECT, f"cannot resolve the DNS server's name {self.config.server}") from None
        finally:
            obs.add_phase("resolve", time.perf_counter() - start)
        return str(infos[0][4][0])

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        where = await self._server_address(obs)
        query = dns.message.make_query(cfg.query_name, cfg.query_type)
        if not cfg.recursion_desired:
            query.flags &= ~dns.flags.RD
        ask = dns.asyncquery.tcp if cfg.transport_protocol == "tcp" else dns.asyncquery.udp
        # blackbox_exporter's three phases, always there: connect is 0 here (dnspython connects
        # and asks in one call; over UDP there is nothing to connect)
        obs.add_phase("resolve", 0.0)
        obs.add_phase("connect", 0.0)
        start = time.perf_counter()
        try:
            # dnspython's own timeout too, so it stops waiting when the run's deadline would
            answer = await ask(query, where, timeout=cfg.timeout, port=cfg.port)
        finally:
            obs.add_phase("request", time.perf_counter() - start)
        self._check(answer, obs)

    def _check(self, answer: dns.message.Message, obs: Observation) -> None:
        cfg = self.config
        rcode = dns.rcode.to_text(answer.rcode())
        records = record_texts(answer.answer)
        obs.values["answer_rrs"] = float(len(records))
        obs.values["authority_rrs"] = float(sum(len(r) for r in answer.authority))
        obs.values["additional_rrs"] = float(sum(len(r) for r in answer.additional))
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                obs.values["serial"] = float(rrset[0].serial)
        obs.details["rcode"] = rcode
        if records:
            shown = records[:MAX_SHOWN_RECORDS]
            obs.details["answers"] = "; ".join(shown) + (
                f"; and {len(records) - len(shown)} more" if records[len(shown) :] else ""
            )
        if rcode not in cfg.valid_rcodes:
            raise ProbeError(Reason.ASSERTION, f"rcode {rcode}, expected {', '.join(cfg.valid_rcodes)}")
        minimum = cfg.min_answers
        if len(records) < minimum:
            raise ProbeError(
                Reason.ASSERTION,
                f"{len(records)} answer records for {cfg.query_type} {cfg.query_name}, expected at least {minimum}",
            )
        for pattern in cfg.answer_matches:
            if not any(re.search(pattern, r) for r in records):
                raise ProbeError(Reason.ASSERTION, f"no answer record matches /{pattern}/")
        for pattern in cfg.answer_not_matches:
            if hits := [r for r in records if re.search(pattern, r)]:
                raise ProbeError(Reason.ASSERTION, f"answer record {hits[0]!r} matches /{pattern}/")


PROBE = DnsProbe
