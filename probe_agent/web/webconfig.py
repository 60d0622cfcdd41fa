"""--web.config.file: TLS and basic auth for the agent's own endpoints, in exporter-toolkit's format.

The same file serves node_exporter and blackbox_exporter users:

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), RequestClientCert,
      client_ca_file: clients.pem                    #   RequireAnyClientCert, VerifyClientCertIfGiven
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...                         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

A bcrypt check costs ~50 ms of CPU by design: it runs in a worker thread (never on the loop the
probes measure with), at most two at a time, and a successful check is remembered so a scraper
pays it once. The certificate is loaded again on every reload (SIGHUP), so a renewed one is
picked up without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from probe_agent.core.errors import ConfigError
from probe_agent.core.files import NamedFileError, check_named_file
from probe_agent.core.yamlload import decode, load_yaml, read_config_bytes

ClientAuthType = Literal[
    "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
]
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
REMEMBERED_LOGINS = 64


class TlsServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cert_file: str
    key_file: str
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: str | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = {}


def load_web_config(path: str | Path) -> WebConfig:
    raw = load_yaml(decode(read_config_bytes(str(path), 1 << 20))) or {}
    try:
        config = WebConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)]
        ) from None
    problems = []
    for user, hashed in config.basic_auth_users.items():
        if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            problems.append(f"basic_auth_users.{user}: not a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')")
    tls = config.tls_server_config
    verifies_clients = tls is not None and tls.client_auth_type in (
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    )
    if tls is not None and verifies_clients and not tls.client_ca_file:
        problems.append(f"tls_server_config.client_ca_file: required with client_auth_type {tls.client_auth_type}")
    if problems:
        raise ConfigError(problems)
    if tls is not None:
        server_context(tls)  # fail at start, not at the first connection
    return config


def server_context(tls: TlsServerConfig, context: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """A server context for `tls`; given an existing one, load the (renewed) files into it."""
    context = context or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = _TLS_VERSIONS[tls.max_version]
    for field, path in (
        ("cert_file", tls.cert_file),
        ("key_file", tls.key_file),
        ("client_ca_file", tls.client_ca_file),
    ):
        if path:
            try:
                check_named_file(path, field)
            except NamedFileError as exc:
                raise ConfigError([f"tls_server_config.{exc}"]) from None
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [f"tls_server_config.cert_file: cannot load {tls.cert_file} / {tls.key_file}: {_why(exc)}"]
        ) from None
    if tls.client_ca_file:
        try:
            context.load_verify_locations(tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                [f"tls_server_config.client_ca_file: cannot load {tls.client_ca_file}: {_why(exc)}"]
            ) from None
    # Python's server side verifies a certificate whenever one is asked for: "any" client
    # certificate (not checked against a CA) cannot be had, so those two ask for a verified one.
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL if tls.client_ca_file else ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return getattr(exc, "strerror", None) or str(exc)


class BasicAuth:
    """bcrypt checks, in worker threads, two at a time. Against guessing and queueing-out:
    - an unknown user costs a check against a stand-in hash of the same cost, so the time of a
      refusal does not tell which users exist;
    - one check at a time per client address (a second one meanwhile is refused at once), and
      at most MAX_QUEUED waiting in all: a flood of wrong passwords cannot delay a right login
      by more than a few checks;
    - an accepted login is remembered, so a scraper pays for its first request only."""

    MAX_QUEUED = 4

    def __init__(self, users: dict[str, str]):
        self.users = users
        self._remembered: dict[bytes, bool] = {}  # digest of the presented credentials -> accepted
        self._checking = asyncio.Semaphore(2)
        self._clients: set[str] = set()  # addresses with a check running or waiting
        self._queued = 0
        self._pending: dict[bytes, asyncio.Future[bool]] = {}  # credentials being checked -> their answer
        self._stand_in: bytes | None = None  # a hash no password matches, for unknown users
        cost = next((h.split("$")[2] for h in users.values() if h.count("$") >= 3), "10")
        self._cost = int(cost) if cost.isdigit() and 4 <= int(cost) <= 31 else 10

    def _stand_in_hash(self) -> bytes:
        import bcrypt

        if self._stand_in is None:
            self._stand_in = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(self._cost))
        return self._stand_in

    async def allows(self, header: str | None, client: str = "") -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        key = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        known = self._remembered.get(key) if hashed is not None else None
        if known is not None:
            return known
        pending = self._pending.get(key)
        if pending is not None:  # the same credentials are being checked: share that answer
            return await asyncio.shield(pending)
        if client in self._clients or self._queued >= self.MAX_QUEUED:
            return False  # refused without a check: this client's last one is still running, or too many wait
        self._clients.add(client)
        self._queued += 1
        self._pending[key] = answer = asyncio.get_running_loop().create_future()
        ok, queued = False, True
        try:
            async with self._checking:
                self._queued -= 1
                queued = False
                import bcrypt

                def check() -> bool:
                    if hashed is None:  # the same work as for a known user, and always no
                        bcrypt.checkpw(password.encode(), self._stand_in_hash())
                        return False
                    return bool(bcrypt.checkpw(password.encode(), hashed.encode()))

                ok = await asyncio.to_thread(check)
        finally:
            self._queued -= queued  # cancelled while waiting
            self._clients.discard(client)
            del self._pending[key]
            answer.set_result(ok)
        if ok:  # wrong passwords are not remembered: they must not fill the memory
            if len(self._remembered) >= REMEMBERED_LOGINS:
                self._remembered.clear()
            self._remembered[key] = True
        return ok
