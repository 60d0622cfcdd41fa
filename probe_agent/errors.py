"""Exception tree of probe-agent.

    ProbeAgentError
    ├── ConfigError      an unusable probes.yaml; lists every problem by probe and field
    └── ProbeError       a probe run failed; carries a closed Reason and a short message

Library exceptions that probe modules do not translate themselves are mapped
to a Reason in one place, `classify_exception`, so the runner never guesses.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import socket
import ssl


class Reason(enum.StrEnum):
    """Why a probe failed. Closed on purpose: it is a metric label."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    TLS = "tls"
    AUTH = "auth"
    PROTOCOL = "protocol"
    ASSERTION = "assertion"
    INTERNAL = "internal"


class ProbeAgentError(Exception):
    """Base of every error probe-agent raises on purpose."""


class ConfigError(ProbeAgentError):
    """probes.yaml cannot be used. `problems` holds one line per problem."""

    def __init__(self, problems: list[str], locations: list[tuple[int, int] | None] | None = None):
        self.problems = problems
        # (line, column) in the file of each problem, where known; printed before it
        self.locations = locations or [None] * len(problems)
        super().__init__("\n".join(problems))


class ProbeError(ProbeAgentError):
    """A probe run failed for a known reason."""

    def __init__(self, reason: Reason, message: str):
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


def classify_exception(exc: BaseException) -> ProbeError:
    """Map an exception nobody translated into a Reason and a short message."""
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return ProbeError(Reason.TIMEOUT, "timed out")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProbeError(Reason.TLS, f"certificate verify failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return ProbeError(Reason.TLS, f"TLS error: {exc.reason or exc}")
    if isinstance(exc, socket.gaierror):
        return ProbeError(Reason.CONNECT, f"cannot resolve host: {exc.strerror}")
    if isinstance(exc, ConnectionRefusedError):
        return ProbeError(Reason.CONNECT, "connection refused")
    if isinstance(exc, ConnectionResetError):
        return ProbeError(Reason.CONNECT, "connection reset by peer")
    if isinstance(exc, (asyncio.IncompleteReadError, EOFError, BrokenPipeError)):
        return ProbeError(Reason.PROTOCOL, "connection closed by peer")
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ProbeError(Reason.CONNECT, "host unreachable")
        return ProbeError(Reason.CONNECT, exc.strerror or type(exc).__name__)
    return ProbeError(Reason.INTERNAL, f"{type(exc).__name__}: {exc}")
