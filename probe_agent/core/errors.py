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
from collections.abc import Callable
from dataclasses import dataclass


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


@dataclass(frozen=True)
class ErrorRule:
    """One row of a probe type's error table: an exception class (or several) of its client
    library, the Reason a run failing with it has, and the message: a format string of `exc`
    (`"query failed (SQLSTATE {exc.sqlstate}): {exc}"`) or a function of it. `when` narrows the
    row to some of the class's instances (a message that says the vhost is missing)."""

    catches: type[BaseException] | tuple[type[BaseException], ...]
    reason: Reason
    message: str | Callable[[BaseException], str]
    when: Callable[[BaseException], bool] | None = None

    def specificity(self, exc: BaseException) -> int | None:
        """How close the row's class is to the exception's own (0: its very class); None if
        the row does not apply."""
        classes = self.catches if isinstance(self.catches, tuple) else (self.catches,)
        mro = type(exc).__mro__
        depths = [mro.index(cls) for cls in classes if cls in mro]
        if not depths or (self.when is not None and not self.when(exc)):
            return None
        return min(depths)


class ErrorTable:
    """A probe type's client-library exceptions as Reasons: the row whose class is the most
    specific for the exception wins, and among rows as specific, the first. A table instead of an
    if-ladder, so the order of rows cannot hide one behind another."""

    def __init__(self, *rules: ErrorRule):
        self.rules = rules

    def translate(self, exc: BaseException) -> ProbeError | None:
        best: tuple[int, int, ErrorRule] | None = None
        for position, rule in enumerate(self.rules):
            depth = rule.specificity(exc)
            if depth is not None and (best is None or (depth, position) < best[:2]):
                best = (depth, position, rule)
        if best is None:
            return None
        rule = best[2]
        message = rule.message(exc) if callable(rule.message) else rule.message.format(exc=exc)
        return ProbeError(rule.reason, message)


# The agent's own resources running out: whatever a library made of it, never the target's fault.
_AGENT_ERRNOS = {
    errno.EMFILE: "out of file descriptors",
    errno.ENFILE: "out of file descriptors system-wide (the file table is full)",
    errno.ENOMEM: "out of memory",
    errno.ENOBUFS: "out of socket buffer space",
}


AGENT_STARVED = "the agent is out of"  # how every such message starts


def agent_resource_error(exc: BaseException) -> ProbeError | None:
    """Reason internal when `exc`, or what caused it, is the agent out of fds or memory."""
    current: BaseException | None = exc
    for _ in range(8):  # a library's chain of wrappers, not an unbounded walk
        if current is None:
            break
        if isinstance(current, MemoryError):
            return ProbeError(Reason.INTERNAL, f"{AGENT_STARVED} memory (not a fault of the target)")
        if isinstance(current, OSError) and current.errno in _AGENT_ERRNOS:
            return ProbeError(
                Reason.INTERNAL, f"the agent is {_AGENT_ERRNOS[current.errno]} (not a fault of the target)"
            )
        if "Too many open files" in str(current):  # folded into a library's own message
            return ProbeError(
                Reason.INTERNAL, f"the agent is {_AGENT_ERRNOS[errno.EMFILE]} (not a fault of the target)"
            )
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return None


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
    if isinstance(exc, PermissionError) and exc.filename is not None:
        # a file the client reads on the agent's machine (a key, ~/.postgresql/): the agent's user
        # cannot, which no target can cause
        return ProbeError(Reason.INTERNAL, f"cannot read {exc.filename}: {exc.strerror}")
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ProbeError(Reason.CONNECT, "host unreachable")
        return ProbeError(Reason.CONNECT, exc.strerror or type(exc).__name__)
    return ProbeError(Reason.INTERNAL, f"{type(exc).__name__}: {exc}")


def did_you_mean(name: str, known: set[str] | tuple[str, ...]) -> str:
    """' (did you mean 'X'?)' for the known word closest to a misspelt one, else ''."""
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def first_names(names: list[str], shown: int = 20) -> str:
    """'a, b, c' or 'a, b, ... and 980 more': names in a problem or a log line, bounded."""
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown]) + f", ... and {len(names) - shown} more"
