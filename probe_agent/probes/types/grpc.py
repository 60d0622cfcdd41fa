"""gRPC health probe: the standard grpc.health.v1.Health/Check, as grpc_health_probe asks it.

Success: the server answers SERVING for `service` ("" asks about the server as a
whole). NOT_SERVING, UNKNOWN and SERVICE_UNKNOWN fail the probe and say which;
a server without the health service fails as `protocol` (UNIMPLEMENTED), one that
does not know the service as `assertion` (NOT_FOUND). Each run opens a fresh
channel of its own (no subchannel shared with other probes), so connect and TLS
are part of every run, as for a new client; `pool: true` keeps the channel.
"""

from __future__ import annotations

import functools
import os
import re
import time
from typing import Any, Literal

# gRPC's C core logs failed handshakes to stderr on its own; the probe reports them, redacted.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # after GRPC_VERBOSITY: it is read at import
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field

from probe_agent.core.errors import ProbeError, Reason
from probe_agent.core.files import read_named_file
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.base import Probe, ProbeConfig, host_port
from probe_agent.probes.clients.tls import TlsFileError, client_context
from probe_agent.schema.fields import Host

SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

# A probe measures one attempt: no retries, no shared connections, no waiting for a
# connection that is not there.
CHANNEL_OPTIONS = (
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.primary_user_agent", "probe-agent"),
)


class GrpcConfig(ProbeConfig):
    type: Literal["grpc"]
    host: Host
    port: int = Field(ge=1, le=65535)
    service: str = ""  # the service name registered with the health service; "" is the whole server
    tls: bool = False
    ca_file: str | None = None  # default: the system's roots (gRPC does not offer skipping verification)
    cert_file: str | None = None  # client certificate (PEM) for mutual TLS
    key_file: str | None = None
    server_name: str | None = None  # the name the certificate must carry, if not `host`
    pool: bool = False  # keep the channel between runs

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        return host_port(target)

    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'grpcs' if self.tls else 'grpc'}://{host}:{self.port}/{self.service}"


@functools.lru_cache(maxsize=64)
def _file_bytes(path: str, _mtime_ns: int, _size: int) -> bytes:
    return read_named_file(path, "ca_file, cert_file or key_file")


def _read(path: str | None) -> bytes | None:
    """A PEM file's bytes, shared by every probe naming the same unchanged file."""
    if not path:
        return None
    stat = os.stat(path)
    return _file_bytes(path, stat.st_mtime_ns, stat.st_size)


def translate(exc: BaseException) -> ProbeError | None:
    if not isinstance(exc, grpc.aio.AioRpcError):
        return None
    code, details = exc.code(), (exc.details() or "").strip()
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return ProbeError(Reason.PROTOCOL, "the server does not implement grpc.health.v1.Health")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ProbeError(Reason.TIMEOUT, "deadline exceeded")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return ProbeError(Reason.AUTH, f"{code.name}: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        lowered = details.lower()
        if verify := re.search(r"CERTIFICATE_VERIFY_FAILED: ([^:]+)", details):
            return ProbeError(Reason.TLS, f"certificate verify failed: {verify.group(1).strip()}")
        if "hostname verification" in lowered:
            return ProbeError(Reason.TLS, "certificate verify failed: it does not name the server")
        if re.search(r"\btls\b|ssl|handshake", lowered):
            ssl_reason = re.search(r"OPENSSL_internal:([A-Z_]+)", details)
            return ProbeError(Reason.TLS, f"TLS handshake failed: {ssl_reason.group(1) if ssl_reason else details}")
        if "connection refused" in lowered:
            return ProbeError(Reason.CONNECT, "connection refused")
        return ProbeError(Reason.CONNECT, f"unavailable: {details}")
    return ProbeError(Reason.PROTOCOL, f"{code.name}: {details}" if details else code.name)


class GrpcProbe(Probe[GrpcConfig]):
    config_model = GrpcConfig
    example = """\
- name: payments-grpc
  type: grpc
  host: payments.example.internal
  port: 50051
  service: payments.v1.Payments
  tls: true
  ca_file: /etc/ssl/internal-ca.pem"""
    translate = staticmethod(translate)
    phase_metric = "probe_grpc_duration_seconds"
    values = {
        "status_code": ValueSpec("probe_grpc_status_code", "gRPC status code of the Check call (0 is OK)."),
        "serving_status": ValueSpec(
            "probe_grpc_serving_status", "Health answer: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN."
        ),
        "ssl": ValueSpec("probe_grpc_ssl", "Indicates if SSL was used for the connection."),
        # blackbox_exporter's: one series per serving status, 1 for the one answered
        **{
            f"healthcheck_{name.lower()}": ValueSpec(
                "probe_grpc_healthcheck_response", "Response HealthCheck response.", ("serving_status",)
            )
            for name in SERVING_STATUS.values()
        },
    }

    def __init__(self, config: GrpcConfig):
        super().__init__(config)
        self._credentials: grpc.ChannelCredentials | None = None
        if config.tls:
            client_context(True, config.ca_file, config.cert_file, config.key_file)  # names a bad file's field
            try:
                self._credentials = grpc.ssl_channel_credentials(
                    _read(config.ca_file), _read(config.key_file or config.cert_file), _read(config.cert_file)
                )
            except OSError as exc:
                raise TlsFileError(f"ca_file, cert_file or key_file: cannot read: {exc.strerror}") from None
        options: list[tuple[str, Any]] = list(CHANNEL_OPTIONS)
        # A connection attempt lives at least this long, 20 s by default, even after the channel
        # is closed: against a server that accepts and never answers, every timed-out run would
        # leave its socket open for 20 s. The probe's own timeout is the attempt's life.
        options.append(("grpc.min_reconnect_backoff_ms", max(100, int(config.timeout * 1000))))
        if config.server_name:
            options.append(("grpc.ssl_target_name_override", config.server_name))
        self._options = tuple(options)
        self._channel: grpc.aio.Channel | None = None

    def _open(self) -> grpc.aio.Channel:
        cfg = self.config
        address = f"[{cfg.host}]:{cfg.port}" if ":" in cfg.host else f"{cfg.host}:{cfg.port}"
        if self._credentials is not None:
            return grpc.aio.secure_channel(address, self._credentials, options=self._options)
        return grpc.aio.insecure_channel(address, options=self._options)

    async def run(self, obs: Observation) -> None:
        cfg = self.config
        obs.values["ssl"] = 1.0 if cfg.tls else 0.0
        for name in SERVING_STATUS.values():
            obs.values[f"healthcheck_{name.lower()}"] = 0.0
            obs.value_labels[f"healthcheck_{name.lower()}"] = {"serving_status": name}
        channel, self._channel = self._channel or self._open(), None
        start = time.perf_counter()
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            # the runner's deadline cancels the call; this one tells the server as well
            response = await stub.Check(health_pb2.HealthCheckRequest(service=cfg.service), timeout=cfg.timeout)
        except grpc.aio.AioRpcError as exc:
            obs.values["status_code"] = float(exc.code().value[0])
            await channel.close()
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise ProbeError(
                    Reason.ASSERTION, f"the health service does not know service {cfg.service!r}"
                ) from None
            raise
        except BaseException:
            await channel.close()
            raise
        finally:
            obs.add_phase("check", time.perf_counter() - start)
        if cfg.pool:
            self._channel = channel
        else:
            await channel.close()
        obs.values["status_code"] = 0.0
        status = int(response.status)
        obs.values["serving_status"] = float(status)
        name = SERVING_STATUS.get(status, str(status))
        obs.details["serving_status"] = name
        if name in SERVING_STATUS.values():
            obs.values[f"healthcheck_{name.lower()}"] = 1.0
        if name != "SERVING":
            what = f"service {cfg.service!r}" if cfg.service else "the server"
            raise ProbeError(Reason.ASSERTION, f"{what} is {name}")

    async def aclose(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()


PROBE = GrpcProbe
