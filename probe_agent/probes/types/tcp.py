"""TCP probe: connect to host:port, optionally over TLS, optionally send a line and expect an answer.

Success: the connection is accepted within the timeout and, when `expect` or
`expect_regex` is set, the bytes read before the peer closes or
`max_read_bytes` is reached contain it.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any, Literal

from pydantic import Field

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, ProbeConfig, host_port
from probe_agent.probes.clients.netinfo import ADDRESS_VALUES, TLS_VALUES, literal_address, record_address, record_tls
from probe_agent.probes.clients.tls import HANDSHAKE_CLOCK, HandshakeClock, client_context
from probe_agent.schema.fields import MAX_BYTE_SIZE, Host, Regex


class TcpConfig(ProbeConfig):
    type: Literal["tcp"]
    host: Host
    port: int = Field(ge=1, le=65535)
    send: str | None = None  # sent after connecting; use \n in YAML double quotes for a newline
    send_secret: bool = False  # `send` holds a credential (AUTH ...): masked everywhere, echoes included
    expect: str | None = None  # the answer must contain this text
    expect_regex: Regex | None = None  # the answer must match this regular expression
    max_read_bytes: int = Field(65536, ge=1, le=MAX_BYTE_SIZE)  # stop reading after this many bytes
    tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None
    server_name: str | None = None  # SNI and the name to verify; defaults to host

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return host_port(target)

    def target(self) -> str:
        return f"{self.host}:{self.port}"


class TcpProbe(Probe[TcpConfig]):
    config_model = TcpConfig
    example = """\
- name: smtp-banner
  type: tcp
  host: mail.example.internal
  port: 25
  expect: "220 "
  timeout: 3s
"""
    phase_metric = "probe_tcp_duration_seconds"
    shown_values = ("cert_expiry_days",)
    failure_reasons = (Reason.TIMEOUT, Reason.CONNECT, Reason.TLS, Reason.PROTOCOL, Reason.ASSERTION, Reason.INTERNAL)
    values = {
        "failed_due_to_regex": ValueSpec("probe_failed_due_to_regex", "Indicates if probe failed due to regex."),
        **ADDRESS_VALUES,
        **TLS_VALUES,
    }

    def __init__(self, config: TcpConfig):
        super().__init__(config)
        self._tls = None
        if config.tls:
            self._tls = client_context(config.tls_verify, config.ca_file)
        self._literal_address = literal_address(config.host)

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        clock = HandshakeClock()
        HANDSHAKE_CLOCK.set(clock)
        obs.values["failed_due_to_regex"] = 0.0
        obs.values["dns_lookup_seconds"] = 0.0  # an address: nothing to look up
        address = self._literal_address or await self._resolve(obs)
        record_address(address, obs)
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection(
            address,
            cfg.port,
            ssl=self._tls,
            server_hostname=(cfg.server_name or cfg.host) if self._tls else None,
        )
        connected = time.perf_counter()
        record_tls(clock, obs)
        obs.note(
            f"connected to {address}:{cfg.port}" + (f", {clock.version} {clock.cipher or ''}" if clock.version else "")
        )
        try:
            if clock.started is not None and clock.finished is not None:
                obs.add_phase("connect", clock.started - start)
                obs.add_phase("tls", clock.finished - clock.started)
            else:
                obs.add_phase("connect", connected - start)
            if cfg.send is not None:
                obs.note(f"> {cfg.send!r}")
                writer.write(cfg.send.encode())
                await writer.drain()
            if cfg.expect is not None or cfg.expect_regex is not None:
                try:
                    await self._expect(reader, obs)
                except ProbeError:
                    obs.values["failed_due_to_regex"] = 1.0
                    raise
                obs.add_phase("exchange", time.perf_counter() - connected)
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1)
            except (OSError, TimeoutError):
                pass

    async def _resolve(self, obs: Observation) -> str:
        """The host's first address, as blackbox_exporter resolves it before connecting (the
        resolve phase and probe_dns_lookup_time_seconds)."""
        start = time.perf_counter()
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                self.config.host, self.config.port, type=socket.SOCK_STREAM
            )
        except socket.gaierror:
            raise ProbeError(Reason.CONNECT, f"cannot resolve host {self.config.host}") from None
        finally:
            seconds = time.perf_counter() - start
            obs.add_phase("resolve", seconds)
            obs.values["dns_lookup_seconds"] = seconds
        return str(infos[0][4][0])

    async def _expect(self, reader: asyncio.StreamReader, obs: Observation) -> None:
        cfg = self.config
        received = b""
        while len(received) < cfg.max_read_bytes:
            chunk = await reader.read(cfg.max_read_bytes - len(received))
            if not chunk:
                break
            received += chunk
            obs.note(f"< {chunk!r}")
            text = received.decode("utf-8", errors="replace")
            if (cfg.expect is None or cfg.expect in text) and (
                cfg.expect_regex is None or re.search(cfg.expect_regex, text)
            ):
                return
        wanted = repr(cfg.expect) if cfg.expect is not None else f"/{cfg.expect_regex}/"
        shown = received[:60].decode("utf-8", errors="replace")
        how = "peer closed the connection" if len(received) < cfg.max_read_bytes else f"read {len(received)} bytes"
        raise ProbeError(Reason.ASSERTION, f"expected {wanted}, {how} after {shown!r}")


PROBE = TcpProbe
