"""NATS server health probe: the monitoring endpoint's /varz and /healthz, optionally a client round trip.

Success: /healthz answers ok (with `jetstream: true`, also JetStream is
enabled and healthy), /varz is readable, and, when `servers` is set, a client
connects, authenticates and completes a PING/PONG round trip (flush). The
/varz fields an on-call engineer reads by hand become values with thresholds.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import aiohttp

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe
from probe_agent.probes.clients.httpclient import http_client_context, make_session
from probe_agent.probes.clients.natsclient import NatsClientConfig, get_monitor_json, translate_nats
from probe_agent.schema.fields import HttpUrl

_UPTIME_PART = re.compile(r"(\d+)([ywdhms])")
_UPTIME_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_uptime(text: str) -> float:
    return float(sum(int(n) * _UPTIME_UNITS[u] for n, u in _UPTIME_PART.findall(text)))


class NatsConfig(NatsClientConfig):
    type: Literal["nats"]
    monitor_url: HttpUrl  # http://host:8222
    jetstream: bool = False  # also require JetStream to be enabled and healthy (/healthz?js-enabled-only=true)

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return {"monitor_url": target}

    def target(self) -> str:
        return self.monitor_url


VARZ_VALUES = {
    # value name: (varz field, metric, help, scale)
    "connections": ("connections", "probe_nats_connections", "Client connections open (varz connections).", 1),
    "total_connections": ("total_connections", "probe_nats_total_connections", "Connections since start.", 1),
    "slow_consumers": ("slow_consumers", "probe_nats_slow_consumers", "Slow consumers seen since start.", 1),
    "subscriptions": ("subscriptions", "probe_nats_subscriptions", "Active subscriptions.", 1),
    "memory_bytes": ("mem", "probe_nats_memory_bytes", "Resident memory of the server in bytes.", 1),
    "cpu_ratio": ("cpu", "probe_nats_cpu_ratio", "Server CPU use, 1 = one core busy (varz cpu / 100).", 0.01),
    "in_messages": ("in_msgs", "probe_nats_in_messages", "Messages received since start (varz in_msgs).", 1),
    "out_messages": ("out_msgs", "probe_nats_out_messages", "Messages sent since start (varz out_msgs).", 1),
    "in_bytes": ("in_bytes", "probe_nats_in_bytes", "Bytes received since start.", 1),
    "out_bytes": ("out_bytes", "probe_nats_out_bytes", "Bytes sent since start.", 1),
}


class NatsProbe(Probe[NatsConfig]):
    config_model = NatsConfig
    example = """\
- name: nats-server
  type: nats
  monitor_url: http://nats.example.internal:8222
  servers: [nats://nats.example.internal:4222]
  jetstream: true
  thresholds:
    slow_consumers: {warning: "> 0"}
"""
    translate = staticmethod(translate_nats)
    phase_metric = "probe_nats_duration_seconds"
    shown_values = ("connections", "slow_consumers", "memory_bytes")
    values = {
        **{name: ValueSpec(metric, help_text) for name, (_f, metric, help_text, _s) in VARZ_VALUES.items()},
        "uptime_seconds": ValueSpec("probe_nats_uptime_seconds", "Seconds since the server started."),
    }

    def __init__(self, config: NatsConfig):
        super().__init__(config)
        self._tls = http_client_context(config.tls_verify, config.ca_file, None, None)
        self._session: aiohttp.ClientSession | None = None
        self._client = config.client_slot() if config.servers else None

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        if self._session is None:
            self._session = make_session(self._tls)
        start = time.perf_counter()
        health_path = "/healthz?js-enabled-only=true" if cfg.jetstream else "/healthz"
        status, health = await get_monitor_json(self._session, cfg.monitor_url, health_path, obs)
        _, varz = await get_monitor_json(self._session, cfg.monitor_url, "/varz", obs)
        obs.add_phase("monitor", time.perf_counter() - start)
        for name, (field, _metric, _help, scale) in VARZ_VALUES.items():
            if isinstance(varz.get(field), (int, float)):
                obs.values[name] = round(varz[field] * scale, 6)
        if isinstance(varz.get("uptime"), str):
            obs.values["uptime_seconds"] = parse_uptime(varz["uptime"])
        obs.details["server_version"] = str(varz.get("version", ""))
        if status != 200 or not isinstance(health, dict) or health.get("status") != "ok":
            error = health.get("error") if isinstance(health, dict) else None
            raise ProbeError(
                Reason.ASSERTION, f"/healthz: {error or health.get('status') if isinstance(health, dict) else status}"
            )
        if self._client is not None:
            await self._round_trip(obs)

    async def _round_trip(self, obs: Observation) -> None:
        assert self._client is not None
        async with self._client.connection(obs) as client:
            start = time.perf_counter()
            await client.flush(timeout=max(self.config.timeout, 0.1))  # type: ignore[arg-type]  # annotated int, used as wait_for seconds
            obs.add_phase("round_trip", time.perf_counter() - start)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._session is not None:
            await self._session.close()


PROBE = NatsProbe
