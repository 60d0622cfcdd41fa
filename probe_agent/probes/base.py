"""What a probe type is: its config model (ProbeConfig) and its probe (Probe).

A probe type talks to one kind of target and measures. It does not time the
whole run, enforce the deadline, judge thresholds, log or touch metrics: the
runner does that once for all types (probe_agent.runtime.runner).

A type is one module in probe_agent.probes, named as its YAML `type`, that sets
`PROBE` to its Probe class. Everything else about the type is declared on that
class and its config model, and the loader, the registry, /metrics and the
docs checks read it from there:

- `config_model`: the typed config (a ProbeConfig subclass with `type: Literal[...]`),
  with `default_port` and `default_thresholds()` when the type has them;
- `values`: what it measures, each with its metric name and help;
- `phase_metric` / `phase_label`: where per-phase timings go;
- `errors`: its client library's exceptions as Reasons, an ErrorTable (the most specific
  class wins; `translate()` for what a table cannot say);
- `info_details`: details that say what the target is, as labels on probe_info;
- `config_info()`: labels on probe_info from the config (`dlq="true"`);
- `example`: a probe of this type as YAML, the one docs/probe-types.md shows (a test checks both).

The contract of `run(obs)`, checked for every registered type by tests/integration/test_hostile_targets.py:

- It may assume a validated config, a running event loop, and that no other run of the same
  probe is in flight. It must not block the loop (files and CPU work go to a thread).
- It reports by filling `obs` (phases, values, details) and by raising: a ProbeError with a
  Reason, or its library's own exception for `errors`/`translate()` to name. What it recorded
  before failing is kept.
- `obs.remaining()` is the time left before the runner's timeout, so a probe that waits for
  something can end with its own reason just before it; the runner enforces the deadline
  anyway, and everything it reads is counted against the run's byte budget.
- It may be cancelled at any await (the timeout, a reload removing the probe, the daemon
  stopping): it must let CancelledError through at once and release what the run opened (a
  `finally` or `async with`); a client library that keeps a connection attempt alive must
  end it by the probe's timeout at the latest. What a `pool: true` probe keeps between runs
  is released by `aclose()`.
"""

from __future__ import annotations

import abc
import re
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probe_agent.core.budget import DEFAULT_RECEIVED_BYTES
from probe_agent.core.errors import ErrorTable, ProbeError, Reason
from probe_agent.core.files import check_named_file
from probe_agent.core.results import Observation, ValueSpec
from probe_agent.schema.fields import RESERVED_LABELS, Buckets, ByteSize, Interval, Threshold, Timeout
from probe_agent.schema.remediation import Remediation


class ProbeConfig(BaseModel):
    """Options every probe type shares. A type's model subclasses this and adds its own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    type: str
    interval: Interval = 30.0  # how often the daemon runs it; at most 1d
    timeout: Timeout = 10.0  # hard deadline for one run; shorter than interval, at most 1h
    critical: bool = False  # a failure makes /health answer 503
    labels: dict[str, str] = {}  # extra Prometheus labels on this probe's series
    tags: list[str] = []  # for `check --tag`, and SLOs by tag (probe_info's `tags` label)
    thresholds: dict[str, Threshold] = {}  # 'duration' or a value name -> warning/critical
    every_shard: bool = False  # with run --shard: run on every replica (a node-local check), not on one
    # Bounds of probe_run_duration_seconds; empty: defaults.buckets, else none (`metrics: full`: the
    # defaults, DEFAULT_BUCKETS below the timeout and the timeout). The loader
    # adds this probe's duration limits (thresholds, SLOs), so ratios at them are exact.
    buckets: Buckets = ()
    # Which series it exports: unset or "default", within the series budget (no bucket bound but
    # those it declares, a status or `internal` once it has one); "full", every status and reason
    # born at zero and the default bounds below its timeout (docs/metrics.md). Unset on a probe an
    # SLO counts: the loader makes it "full", so the SLO's first run is in its ratio.
    metrics: Literal["default", "full"] | None = None
    failure_threshold: int = Field(1, ge=1)  # consecutive failures before it counts as failing
    success_threshold: int = Field(1, ge=1)  # consecutive successes before it counts as healthy again
    remediation: Remediation | None = None  # hooks run when it becomes failing (probe_agent.schema.remediation)
    # Bytes one run may receive from its target, over all its connections (after TLS): more
    # fails the run, reason protocol. Unset: received_bytes_limit()'s default; at most 256MiB.
    max_received_bytes: ByteSize | None = None

    # The port used when a config leaves `port` out or 0 (types with a port field only).
    default_port: ClassVar[int] = 0

    @classmethod
    def default_thresholds(cls, raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """Limits a type applies unless the probe sets its own for the same key, e.g. a DLQ
        that warns at depth > 0. `raw` is the probe's YAML mapping, before validation."""
        return {}

    @model_validator(mode="before")
    @classmethod
    def _type_defaults(cls, data: Any) -> Any:
        # One place for every type's defaults: the probe's own settings always win.
        if not isinstance(data, dict):
            return data
        defaults = cls.default_thresholds(data)
        if defaults and isinstance(data.get("thresholds", {}), dict):
            data = {**data, "thresholds": {**defaults, **(data.get("thresholds") or {})}}
        if cls.default_port and not data.get("port"):
            data = {**data, "port": cls.default_port}
        return data

    @model_validator(mode="after")
    def _named_files(self) -> ProbeConfig:
        # Every *_file field of every type (CA bundles, keys, password and credential files):
        # a FIFO or a device there would hang or flood whoever opens it, at load or at connect.
        for field_name in type(self).model_fields:
            path = getattr(self, field_name) if field_name.endswith("_file") else None
            if isinstance(path, str) and path:
                check_named_file(path, field_name, missing_ok=True)  # missing: a problem of the build
        return self

    @field_validator("tags")
    @classmethod
    def _tag_words(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag.strip() or "," in tag:
                # probe_info carries them as one label, ",a,b,", which SLO rules match on
                raise ValueError(f"{tag!r} is not a tag: one word, no comma (write tags: [a, b])")
        return tags

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) or key.startswith("__"):
                raise ValueError(f"{key!r} is not a valid Prometheus label name")
            if key in RESERVED_LABELS:
                raise ValueError(f"label {key!r} is reserved by probe-agent")
        return labels

    @classmethod
    def from_target(cls, target: str) -> dict[str, Any]:
        """The fields a target given on the command line stands for (`check http URL`)."""
        name = typing.get_args(cls.model_fields["type"].annotation) or ("this",)
        raise ValueError(f"a {name[0]} probe has no one-word target: write it in a probes file")

    def received_bytes_limit(self) -> int:
        """The run's byte budget (probe_agent.core.budget); a type that reads large answers by design
        (an HTTP body up to max_body_bytes) makes room for them."""
        return self.max_received_bytes or DEFAULT_RECEIVED_BYTES

    def kept_out_of_traces(self) -> tuple[str, ...]:
        """Texts of the config a client library's error may quote that a trace (`check -v`) must
        not repeat (a datastore's query)."""
        return ()

    def duration_limits(self) -> tuple[float, ...]:
        """Latency limits of the type's own (a synthetic step's), added to the histogram bounds."""
        return ()

    def phase_names(self) -> tuple[str, ...]:
        """The phases a phase histogram may count (a synthetic flow's step names)."""
        return ()

    def target(self) -> str:
        """What the probe talks to, for probe_info and humans. Redacted by the caller."""
        return ""

    def target_key(self) -> str:
        """The host:port this probe loads, for per-target fairness (never shown anywhere)."""
        words = self.target().split()
        target = words[0] if words else ""
        if "://" in target:
            netloc = urlsplit(target).netloc.rpartition("@")[2]
            return netloc.lower() or target
        return target.lower()


def host_port(target: str) -> dict[str, Any]:
    """'db.internal:5432' or '[::1]:5432' -> host and port; a missing port is the type's default."""
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port or (":" in host and not host.startswith("[")):
        return {"host": target.strip("[]")}
    if not port.isdigit():
        raise ValueError(f"invalid port in {target!r}: expected HOST:PORT")
    return {"host": host.strip("[]"), "port": int(port)}


C = TypeVar("C", bound=ProbeConfig)


class Probe(abc.ABC, Generic[C]):
    config_model: ClassVar[type[ProbeConfig]]
    # Values this type may record, by name; each becomes its own metric.
    values: ClassVar[dict[str, ValueSpec]] = {}
    # Where per-phase timings go; the label says what the key means (phase, step).
    phase_metric: ClassVar[str] = ""
    phase_label: ClassVar[str] = "phase"
    # A histogram of the phases too (a synthetic flow's steps), with the probe's bounds. Its
    # series are bounded by the config: only the phases its config names are counted.
    phase_histogram: ClassVar[str] = ""
    # One probe of this type as a YAML list item, as docs/probe-types.md shows it.
    example: ClassVar[str] = ""
    # The measured values `check` shows beside a probe, in human units: what on-call wants to
    # see at a glance (the rest is in `check --format json`).
    shown_values: ClassVar[tuple[str, ...]] = ()
    # The reasons a run of this type can fail with: probe_failures_total has each from the start.
    failure_reasons: ClassVar[tuple[Reason, ...]] = tuple(Reason)
    # Details that say what the target is (a server's version): labels on probe_info, shown by `check`.
    info_details: ClassVar[tuple[str, ...]] = ()
    # Its client library's exceptions as Reasons (see translate).
    errors: ClassVar[ErrorTable] = ErrorTable()

    def __init__(self, config: C):
        self.config = config

    @classmethod
    def config_info(cls, config: Any) -> dict[str, str]:
        """Labels on probe_info that the config decides (a queue that is a dead-letter queue),
        for alert rules to select on."""
        return {}

    @abc.abstractmethod
    async def run(self, obs: Observation) -> None:
        """Do one probe; record into `obs`; raise ProbeError (or let a library error out) on failure."""

    async def aclose(self) -> None:
        """Release what the probe keeps between runs (sessions, pools)."""

    @classmethod
    async def aclose_shared(cls) -> None:
        """Release what all probes of this type share on the running loop (see close_shared)."""

    @classmethod
    def translate(cls, exc: BaseException) -> ProbeError | None:
        """Map this type's library exceptions to a Reason and message; None leaves it to the generic mapping.

        The runner calls it for every exception that is not already a ProbeError, so a
        probe's run() lets library errors propagate instead of catching them itself. By default
        the type's `errors` table decides (most specific class wins)."""
        return cls.errors.translate(exc)
