"""Remediation hooks: what the runbooks do by hand when a check fails (recycle a pool, flush a
cache, pause a queue), run by the agent when a probe becomes failing.

A probe's `remediation` lists actions, each an HTTP request (a webhook to the application's
admin API) or a command (an argument list, never a shell), with `{{probe}}`, `{{type}}`,
`{{status}}`, `{{reason}}`, `{{message}}` and `{{target}}` filled in. A value comes from the
target's own words (a message quotes what it answered), so it is encoded for where it goes and
can never change the shape of the call: in a URL it is one percent-encoded component, allowed
only after the host (in the path, query or fragment); in a header its line breaks become spaces;
in `json` and in a JSON `body` it is a JSON string's content; a command argument stays one
argument. The rules:

- Dry run by default: the agent logs what it would do and counts `dry_run`; `dry_run: false`
  makes it act.
- When the probe becomes failing (after its failure_threshold), and again every `cooldown`
  while it stays failing, at most `max_attempts` times per `window`; a wanted attempt beyond
  that is counted `suppressed`, and the probe is escalated: an error log line, a state in
  /health, probe_agent_remediation_escalated 1, until the probe is healthy again.
- Never on the probe's path: the actions run in a task of their own, one attempt per probe at
  a time and a few across the agent, each with its own timeout (a hung command's process
  group is killed). A run of the probe never waits for them.
- Every outcome is counted in probe_agent_remediations_total{probe, action, result}, result
  one of ok, failed, dry_run, suppressed. Logged lines are redacted like every output.
- Not during a maintenance window: the work there is planned.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import re
import signal
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from probe_agent.core.health import Health
from probe_agent.schema.remediation import TEMPLATE, HttpAction, Remediation, RemediationAction

if TYPE_CHECKING:
    from probe_agent.core.redact import Redactor
    from probe_agent.core.results import Result
    from probe_agent.runtime.metrics import AgentMetrics
    from probe_agent.runtime.state import ProbeState

RESULTS = ("ok", "failed", "dry_run", "suppressed")
ACTIONS_AT_ONCE = 8  # across the agent: a wide outage must not fork a hundred commands at once
OUTPUT_SHOWN = 300  # characters of a failed action's output or body in its log line

log = logging.getLogger("probe_agent")


def fill(text: str, values: dict[str, str], encode: Callable[[str], str] | None = None) -> str:
    """`text` with its templates filled, each value passed through `encode` for its context."""
    if encode is None:
        return TEMPLATE.sub(lambda m: values.get(m.group(1), ""), text)
    return TEMPLATE.sub(lambda m: encode(values.get(m.group(1), "")), text)


def url_component(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def header_text(value: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value)


def json_string_content(value: str) -> str:
    return json.dumps(value)[1:-1]


def _is_json_body(http: HttpAction) -> bool:
    types = [v for k, v in http.headers.items() if k.lower() == "content-type"]
    if types:
        return "json" in types[0].lower()
    try:  # no content type given: a body that is JSON once its templates are filled is JSON
        json.loads(TEMPLATE.sub("", http.body or ""))
    except ValueError:
        return False
    return True


def _fill_json(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, dict):
        return {k: _fill_json(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_json(v, values) for v in value]
    return value


@dataclass(slots=True)
class _Record:
    """One probe's remediation bookkeeping (only probes with a remediation have one)."""

    attempts: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=64))
    last_attempt: float = float("-inf")  # monotonic; also when a suppression was counted
    running: asyncio.Task[None] | None = None
    escalated: bool = False
    last_outcome: str = ""  # for /health: "ok", "failed: ...", "dry_run"


class Remediator:
    def __init__(self, metrics: AgentMetrics) -> None:
        self.metrics = metrics
        self.records: dict[str, _Record] = {}
        self._slots = asyncio.Semaphore(ACTIONS_AT_ONCE)
        self._session: Any = None  # aiohttp.ClientSession, made at the first webhook

    # --- deciding, on the loop, per result --------------------------------------

    def on_result(self, state: ProbeState, result: Result, redactor: Redactor) -> None:
        """Called after each recorded result; starts an attempt in the background when one is due."""
        plan = state.config.remediation
        if plan is None:
            return
        record = self.records.setdefault(state.config.name, _Record())
        if state.effective_health() is not Health.FAILING:
            if record.escalated:
                log.info("probe healthy again; remediation escalation cleared", extra={"probe": state.config.name})
                self.metrics.remediation_escalated.labels(state.config.name).set(0)
            record.escalated, record.attempts = False, collections.deque(maxlen=64)
            record.last_attempt = float("-inf")
            return
        if state.maintenance is not None or (record.running is not None and not record.running.done()):
            return
        now = time.monotonic()
        if now - record.last_attempt < plan.cooldown:
            return
        record.last_attempt = now
        recent = [t for t in record.attempts if now - t < plan.window]
        if len(recent) >= plan.max_attempts:
            for action in plan.actions:
                self.metrics.remediations.labels(state.config.name, action.name, "suppressed").inc()
            if not record.escalated:
                record.escalated = True
                self.metrics.remediation_escalated.labels(state.config.name).set(1)
                log.error(
                    "remediation did not help: %d attempts in %.0fs and the probe is still failing; escalate to"
                    " the owning team",
                    len(recent),
                    plan.window,
                    extra={"probe": state.config.name, "last_outcome": record.last_outcome, "detail": result.message},
                )
            return
        record.attempts.append(now)
        values = {
            "probe": state.config.name,
            "type": state.config.type,
            "status": result.status.label,
            "reason": result.reason.value if result.reason else "",
            "message": result.message,
            "target": state.target,
        }
        record.running = asyncio.create_task(
            self._attempt(state.config.name, plan, values, record, redactor), name=f"remediate:{state.config.name}"
        )

    # --- acting, in a task of its own -----------------------------------------

    async def _attempt(
        self, probe: str, plan: Remediation, values: dict[str, str], record: _Record, redactor: Redactor
    ) -> None:
        for action in plan.actions:
            what = redactor.redact(self._describe(action, values))
            if plan.dry_run:
                log.info("remediation (dry run) would run %s", what, extra={"probe": probe, "action": action.name})
                outcome = "dry_run"
            else:
                async with self._slots:
                    try:
                        error = await self._run(action, values, action.timeout or plan.timeout)
                    except Exception as exc:  # noqa: BLE001 - an action must never take the agent down with it
                        error = f"internal error: {type(exc).__name__}: {exc}"
                outcome = "ok" if error is None else "failed"
                if error is None:
                    log.info("remediation ran %s", what, extra={"probe": probe, "action": action.name})
                else:
                    log.warning(
                        "remediation failed: %s: %s",
                        what,
                        redactor.redact(error),
                        extra={"probe": probe, "action": action.name},
                    )
            self.metrics.remediations.labels(probe, action.name, outcome).inc()
            record.last_outcome = outcome

    @staticmethod
    def _describe(action: RemediationAction, values: dict[str, str]) -> str:
        if action.http is not None:
            return f"{action.name}: {action.http.method} {fill(action.http.url, values, url_component)}"
        assert action.command is not None
        return f"{action.name}: " + " ".join(fill(arg, values) for arg in action.command)

    async def _run(self, action: RemediationAction, values: dict[str, str], seconds: float) -> str | None:
        """None on success, else what went wrong; `seconds` is the action's time limit."""
        if action.http is not None:
            return await self._request(action.http, values, seconds)
        assert action.command is not None
        return await _command([fill(arg, values) for arg in action.command], seconds)

    async def _request(self, http: HttpAction, values: dict[str, str], seconds: float) -> str | None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        headers = {name: fill(value, values, header_text) for name, value in http.headers.items()}
        body: bytes | None = None
        if http.json_body is not None:
            body = json.dumps(_fill_json(http.json_body, values)).encode()
            headers.setdefault("Content-Type", "application/json")
        elif http.body is not None:
            body = fill(http.body, values, json_string_content if _is_json_body(http) else None).encode()
        try:
            async with self._session.request(
                http.method,
                fill(http.url, values, url_component),
                headers=headers,
                data=body,
                ssl=None if http.tls_verify else False,
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=False,
            ) as response:
                if 200 <= response.status < 300:
                    return None
                text = (await response.content.read(OUTPUT_SHOWN)).decode(errors="replace")
                return f"HTTP {response.status}: {text.strip()}"
        except TimeoutError:
            return f"no answer within {seconds:g}s"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"

    def view(self, probe: str, window: float) -> dict[str, object] | None:
        """What /health shows of a probe's remediation."""
        record = self.records.get(probe)
        if record is None:
            return None
        now = time.monotonic()
        return {
            "escalated": record.escalated,
            "attempts_in_window": sum(1 for t in record.attempts if now - t < window),
            "last_outcome": record.last_outcome or None,
        }

    def forget(self, names: set[str]) -> None:
        """Drop the records of probes no longer configured (a reload)."""
        for name in set(self.records) - names:
            record = self.records.pop(name)
            if record.escalated:
                self.metrics.remediation_escalated.remove(name)

    async def close(self) -> None:
        running = [r.running for r in self.records.values() if r.running is not None and not r.running.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=5)
        if self._session is not None:
            await self._session.close()


async def _command(argv: list[str], seconds: float) -> str | None:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills what it started too
        )
    except OSError as exc:
        return f"cannot start {argv[0]}: {exc.strerror or exc}"
    try:
        output, _ = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return f"killed after {seconds:g}s without finishing"
    if process.returncode == 0:
        return None
    shown = output[-OUTPUT_SHOWN:].decode(errors="replace").strip()
    return f"exit status {process.returncode}" + (f": {shown}" if shown else "")
