"""run_probe(): the one code path from a probe to a Result, shared by the daemon and `check`.

It owns the clock, the hard timeout, exception -> Reason mapping, thresholds
and redaction of everything a run reports. A probe type only adds what is its
own: the synthetic flow gives each step a deadline inside the run's (so a slow
step is named) and masks the values it extracts at run time, which no config
could list in advance.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any

from probe_agent.config.loader import AgentConfig
from probe_agent.core.budget import READ_BUDGET, ReadBudget, guard_loop
from probe_agent.core.errors import ConfigError, ProbeError, Reason, agent_resource_error, classify_exception
from probe_agent.core.files import NamedFileError
from probe_agent.core.loopmonitor import DEFAULT_LAG_TOLERANCE, LoopMonitor
from probe_agent.core.redact import Redactor
from probe_agent.core.results import Observation, Result, Status
from probe_agent.core.units import value_text
from probe_agent.probes import REGISTRY
from probe_agent.probes.base import Probe, ProbeConfig
from probe_agent.probes.clients.tls import TlsFileError

MAX_MESSAGE_CHARS = 300


@dataclass(slots=True)
class ProbeHandle:
    """A configured probe instance and what it needs to run."""

    config: ProbeConfig
    probe: Probe[Any]
    redactor: Redactor
    # bytes a run may receive (probe_agent.core.budget); a pooled connection counts against it for good
    budget: ReadBudget = field(init=False)
    # the host:port its runs load, for per-target fairness: parsed once, where the handle is built
    # (off the loop), not by the scheduler for each of 10,000 probes a reload adds
    target: str = field(init=False)

    def __post_init__(self) -> None:
        self.budget = ReadBudget(self.config.received_bytes_limit())
        self.target = self.config.target_key()

    @classmethod
    def build(cls, config: ProbeConfig, redactor: Redactor) -> ProbeHandle:
        return cls(config, REGISTRY[config.type](config), redactor)

    @property
    def name(self) -> str:
        return self.config.name

    async def aclose(self) -> None:
        try:
            await asyncio.wait_for(self.probe.aclose(), timeout=5)
        except Exception:  # noqa: BLE001 - closing must not stop the agent
            pass


def build_handles(agent_config: AgentConfig, configs: list[ProbeConfig] | None = None) -> list[ProbeHandle]:
    """Everything a probe needs before its first run (TLS contexts, files it reads), or ConfigError.
    Each handle masks its probe's outputs with that probe's own secrets.

    Blocking (a TLS context loads files): the daemon calls it in a worker thread. `validate`,
    `check` and every reload go through it, so a config that validates also builds."""
    handles, problems = [], []
    for config in agent_config.probes if configs is None else configs:
        redactor = agent_config.redactor(config.name)
        try:
            handles.append(ProbeHandle.build(config, redactor))
        except (TlsFileError, NamedFileError) as exc:
            problems.append(f"probe {config.name!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - any failure to build is a problem with this probe
            problems.append(f"probe {config.name!r}: cannot be set up: {type(exc).__name__}: {exc}")
    if problems:
        raise ConfigError([Redactor(agent_config.secrets).redact(p) for p in problems])
    return handles


def drop_tracebacks(exc: BaseException) -> None:
    """Clear the tracebacks of a failed run's exception chain. Each holds the frames it passed
    through, whose locals hold the exceptions (`except ... as exc: raise ProbeError(...) from
    exc`): a reference cycle per failed run, with its observation and the client's request
    objects, that only the garbage collector frees, and that a reload's gc.freeze() (runs fail
    while it builds) would keep for good. Nothing reads them after this."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        current.__traceback__ = None
        os_error = getattr(current, "os_error", None)  # aiohttp's connector errors wrap one
        if isinstance(os_error, BaseException):
            os_error.__traceback__ = None
        current = current.__cause__ or current.__context__


def _shorten(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS and "\n" not in text and "  " not in text:
        return text
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


async def run_probe(
    handle: ProbeHandle,
    monitor: LoopMonitor | None = None,
    lag_tolerance: float = DEFAULT_LAG_TOLERANCE,
    *,
    trace: bool = False,
) -> Result:
    config = handle.config
    obs = Observation(trace=[] if trace else None)
    started_at = time.time()
    started_mono = time.monotonic()
    start = time.perf_counter()
    failure: ProbeError | None = None
    budget = handle.budget
    guard_loop(asyncio.get_running_loop())
    budget_token = READ_BUDGET.set(budget)
    try:
        async with asyncio.timeout(config.timeout) as deadline:
            obs.deadline = deadline.when() or math.inf
            budget.start(deadline)
            await handle.probe.run(obs)
    except TimeoutError as exc:
        failure = ProbeError(Reason.TIMEOUT, f"no answer within {config.timeout:g}s")
        drop_tracebacks(exc)
    except asyncio.CancelledError:
        raise
    except ProbeError as exc:
        failure = agent_resource_error(exc.__cause__) if exc.__cause__ is not None else None
        failure = failure or exc
        drop_tracebacks(exc)
    except Exception as exc:  # noqa: BLE001 - every failure becomes data
        failure = agent_resource_error(exc) or handle.probe.translate(exc) or classify_exception(exc)
        drop_tracebacks(exc)
        # what the client library said, word for word, for a trace; never the query it ran
        if obs.trace is not None:
            said = " ".join(str(exc).split())[:2000]
            for text in config.kept_out_of_traces():
                if text.strip():
                    said = said.replace(" ".join(text.split()), "…").replace(text.strip(), "…")
            obs.note(f"error: {type(exc).__module__}.{type(exc).__name__}: {said}")
    finally:
        READ_BUDGET.reset(budget_token)
        budget.deadline = None
    duration = time.perf_counter() - start
    if failure is None and start < budget.last_byte:
        # up to the target's last answer, as the loop read it off the socket: not the iterations
        # the waiting coroutine then took to wake on a busy loop, nor the agent's own work after
        # it (parsing, assertions). A failed run keeps its whole time (a timeout is its deadline).
        duration = budget.last_byte - start
    if budget.exceeded:
        # whatever the library made of the cut connection, this is what happened
        failure = ProbeError(
            Reason.PROTOCOL, f"the target sent more than {budget.limit} bytes in one run (max_received_bytes)"
        )
    loop_lag = monitor.lag_during(started_mono) if monitor is not None else 0.0
    if obs.trace is not None:
        obs.note(f"phases: {', '.join(f'{k} {v * 1000:.1f} ms' for k, v in obs.phases.items()) or 'none'}")
        if obs.details:
            obs.note(f"details: {', '.join(f'{k}={v}' for k, v in obs.details.items())}")
        if failure is not None:
            obs.note(f"failed: {failure.reason.value}: {failure.message}")

    if failure is None:
        status, reason, message = Status.OK, None, ""
    else:
        status = Status.UNKNOWN if failure.reason is Reason.INTERNAL else Status.CRITICAL
        reason, message = failure.reason, failure.message

    breaches = []
    for key, threshold in config.thresholds.items():
        value = duration if key == "duration" else obs.values.get(key)
        if value is None:
            continue
        for level, limit in ((Status.CRITICAL, threshold.critical), (Status.WARNING, threshold.warning)):
            if limit is not None and limit.breached_by(value):
                breaches.append(
                    f"{key} {value_text(key, value)} {limit.describe(functools.partial(value_text, key))} ({level.label})"
                )
                if failure is None and level > status:
                    status = level
                break

    if failure is None and obs.warnings and status < Status.WARNING:
        status = Status.WARNING
    if failure is None and (breaches or obs.warnings):
        message = "; ".join([*obs.warnings, *breaches])
    redact = handle.redactor.redact
    details = {k: _shorten(redact(v)) for k, v in obs.details.items()}
    distorted = loop_lag > lag_tolerance
    if distorted:
        # The agent, not the target, may have added up to this much to the timings.
        details["distorted"] = f"event loop late by {loop_lag * 1000:.0f} ms during this run; timings may be inflated"
    return Result(
        probe=config.name,
        type=config.type,
        status=status,
        reason=reason,
        message=_shorten(redact(message)),
        duration=duration,
        started_at=started_at,
        phases=obs.phases,  # the observation is not used again: no copies
        values=obs.values,
        details=details,
        breaches=tuple(breaches),
        loop_lag=loop_lag,
        distorted=distorted,
        value_labels={k: {n: redact(v) for n, v in labels.items()} for k, labels in obs.value_labels.items()},
        trace=tuple(redact(line) for line in obs.trace) if obs.trace else (),
    )


def not_run(
    handle: ProbeHandle,
    status: Status,
    reason: Reason,
    message: str,
    started_at: float,
    waited: float,
    *,
    skipped: bool = False,
) -> Result:
    """The result of a tick the scheduler had to skip. About the target (its slots held by runs
    that time out) it is a failed run; the agent's own (`skipped`) it is counted apart."""
    return Result(
        skipped=skipped,
        probe=handle.name,
        type=handle.config.type,
        status=status,
        reason=reason,
        message=handle.redactor.redact(message),
        duration=waited,
        started_at=started_at,
        phases={},
        values={},
        details={},
    )
