"""probes.yaml: typed models, ${ENV} expansion, defaults, and errors by probe and field.

Loading never stops at the first problem: every probe is validated and every
problem is reported as `probe 'NAME': FIELD: what is wrong`, so one
`probe-agent validate` run shows the whole list.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from probe_agent.errors import ConfigError
from probe_agent.loopmonitor import DEFAULT_LAG_TOLERANCE
from probe_agent.redact import Redactor, collect_secrets
from probe_agent.yamlload import MAX_CONFIG_BYTES, decode, load_yaml, read_config_bytes

DEFAULT_CONFIG_PATH = "probes.yaml"
CONFIG_ENV_VAR = "PROBE_AGENT_CONFIG"

# Labels the agent sets itself; a user label may not shadow them.
RESERVED_LABELS = frozenset({"probe", "type", "status", "reason", "phase", "step", "target", "le", "instance", "job"})

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|s|m|h|d)")
_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, allow_zero: bool = False) -> float:
    """'500ms', '15s', '1m30s' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 15s or 1m")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"invalid duration {value!r}: expected a duration such as 500ms, 15s or 1m")
    else:
        raise ValueError("expected a duration such as 500ms, 15s or 1m")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

MAX_INTERVAL = 86400.0  # a probe that runs less than daily is not monitoring anything
MAX_TIMEOUT = 3600.0


def _at_most(limit: float, text: str) -> AfterValidator:
    def check(seconds: float) -> float:
        if seconds > limit:
            raise ValueError(f"at most {text}, got {seconds:g}s")
        return seconds

    return AfterValidator(check)


Interval = Annotated[Duration, _at_most(MAX_INTERVAL, "1d")]
Timeout = Annotated[Duration, _at_most(MAX_TIMEOUT, "1h")]


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url


Regex = Annotated[str, AfterValidator(_check_regex)]  # a regular expression, compiled once to check it
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]  # kept as the user wrote it (no normalising)

_LIMIT = re.compile(r"^\s*(>=|<=|>|<)?\s*(.+?)\s*$")


class Limit(BaseModel):
    """One threshold bound: breached when `value OP bound`. A bare number means '>'."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    op: str
    bound: float

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return data
        if isinstance(data, bool):
            raise ValueError("expected a number or a comparison such as '> 100' or '< 7'")
        if isinstance(data, (int, float)):
            return {"op": ">", "bound": float(data)}
        match = _LIMIT.match(str(data))
        if not match:
            raise ValueError(f"invalid threshold {data!r}")
        op, text = match.group(1) or ">", match.group(2)
        try:
            bound = float(text)
        except ValueError:
            try:
                bound = parse_duration(text, allow_zero=True)
            except ValueError:
                raise ValueError(
                    f"invalid threshold {data!r}: expected a number or a comparison such as '> 100', '< 7' or '> 500ms'"
                ) from None
        return {"op": op, "bound": bound}

    def breached_by(self, value: float) -> bool:
        return {
            ">": value > self.bound,
            ">=": value >= self.bound,
            "<": value < self.bound,
            "<=": value <= self.bound,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


class Threshold(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    warning: Limit | None = None
    critical: Limit | None = None


class ProbeConfig(BaseModel):
    """Options every probe type shares. A type's model subclasses this and adds its own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    type: str
    interval: Interval = 30.0  # how often the daemon runs it; at most 1d
    timeout: Timeout = 10.0  # hard deadline for one run; shorter than interval, at most 1h
    critical: bool = False  # a failure makes /health answer 503
    labels: dict[str, str] = {}  # extra Prometheus labels on this probe's series
    tags: list[str] = []  # for `check --tag`
    thresholds: dict[str, Threshold] = {}  # 'duration' or a value name -> warning/critical
    failure_threshold: int = Field(1, ge=1)  # consecutive failures before it counts as failing
    success_threshold: int = Field(1, ge=1)  # consecutive successes before it counts as healthy again

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) or key.startswith("__"):
                raise ValueError(f"{key!r} is not a valid Prometheus label name")
            if key in RESERVED_LABELS:
                raise ValueError(f"label {key!r} is reserved by probe-agent")
        return labels

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> ProbeConfig:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout: {self.timeout:g}s must be shorter than interval ({self.interval:g}s)"
            )
        return self

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


class Defaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    interval: Interval = 30.0
    timeout: Timeout = 10.0
    failure_threshold: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)


class AgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    defaults: Defaults = Defaults()
    max_concurrency: int = Field(64, ge=1)  # probe runs in flight at once, all probes together
    max_concurrency_per_target: int = Field(32, ge=1)  # runs in flight against one host:port
    # A run during which the event loop was later than this is marked distorted.
    loop_lag_tolerance: Duration = DEFAULT_LAG_TOLERANCE
    probes: list[ProbeConfig] = []
    # Strings that must never leave the agent (passwords, tokens); filled by the loader.
    # By probe: a probe's outputs are masked with its own secrets (a password of one probe
    # that is an ordinary word in another's message stays readable there); all of them
    # together are the last net on log lines.
    probe_secrets: dict[str, frozenset[str]] = {}
    secrets: frozenset[str] = frozenset()

    def redactor(self, probe: str) -> Redactor:
        """The redactor of one probe's outputs: its own secrets and the patterns."""
        return Redactor.of(self.probe_secrets.get(probe, ()))


# --- ${VAR} expansion ------------------------------------------------------

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_VAR_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|AUTH|CRED", re.IGNORECASE)


def _expand(value: Any, env: Mapping[str, str], path: str, problems: list[str], secrets: set[str]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            var, default = match.group(1), match.group(2)
            if var in env:
                resolved = env[var]
            elif default is not None:
                resolved = default
            else:
                problems.append(f"{path}: environment variable {var} is not set (use ${{{var}:-default}} for a default)")
                return ""
            if _SECRET_VAR_NAME.search(var) and resolved:
                secrets.add(resolved)
            return resolved

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, list):
        return [_expand(v, env, f"{path}[{i}]", problems, secrets) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{path}.{k}" if path else str(k), problems, secrets) for k, v in value.items()}
    return value


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            # pydantic puts validator names such as 'function-after[...]' in loc; they say nothing to a user
            if "[" in str(item) and "(" in str(item):
                continue
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _pydantic_problems(prefix: str, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        # A model-level rule names its field at the start of its message itself.
        field = _field_path(err["loc"])
        problems.append(f"{prefix}{field}: {msg}" if field else f"{prefix}{msg}")
    return problems


def parse_config(
    text: str, source: str = "<config>", env: Mapping[str, str] | None = None, *, allow_empty: bool = False
) -> AgentConfig:
    """Parse and validate a probes.yaml text. Raises ConfigError listing every problem.

    Top-level keys starting with `x-` are ignored: they hold YAML anchors, as in compose files."""
    from probe_agent.probes import (
        REGISTRY,  # the registry imports config models: import late
    )

    env = os.environ if env is None else env
    raw = load_yaml(text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["expected a mapping with a 'probes' list at the top level"])
    raw = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.startswith("x-"))}
    problems: list[str] = []
    if not raw.get("probes") and not allow_empty:
        problems.append("no probes configured: add probes under 'probes:' (or pass --allow-empty to run with none)")
    secrets: set[str] = set()
    env_secrets: dict[str, set[str]] = {}
    raw_probes = raw.pop("probes", None) or []
    top = _expand(raw, env, "", problems, secrets)
    try:
        agent = AgentConfig.model_validate(top)
    except ValidationError as exc:
        problems.extend(_pydantic_problems("", exc))
        agent = AgentConfig()
    defaults = agent.defaults.model_dump()

    if not isinstance(raw_probes, list):
        raise ConfigError(problems + ["probes: expected a list of probes"])

    probes: list[ProbeConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw_probes):
        if not isinstance(entry, dict):
            problems.append(f"probes[{index}]: expected a mapping with 'name' and 'type'")
            continue
        name = entry.get("name")
        label = f"probe {name!r}" if isinstance(name, str) and name else f"probes[{index}]"
        if isinstance(name, str):
            if name in seen:
                problems.append(f"{label}: name: duplicate name (also probes[{seen[name]}])")
            seen.setdefault(name, index)
        else:
            problems.append(f"{label}: name: required, a string")
        probe_type = entry.get("type")
        model = REGISTRY.get(probe_type).config_model if probe_type in REGISTRY else None
        if model is None:
            known = ", ".join(sorted(REGISTRY))
            problems.append(f"{label}: type: unknown probe type {probe_type!r} (known: {known})")
            continue
        env_problems: list[str] = []
        own_secrets: set[str] = set()
        expanded = _expand(entry, env, "", env_problems, own_secrets)
        if isinstance(name, str):
            env_secrets[name] = own_secrets
        if env_problems:
            # The empty string left behind would only cause follow-on errors: report the cause alone.
            problems.extend(f"{label}: {p}" for p in env_problems)
            continue
        try:
            probes.append(model.model_validate({**defaults, **expanded}))
        except ValidationError as exc:
            found = _pydantic_problems(f"{label}: ", exc)
            if not isinstance(name, str):
                found = [p for p in found if not p.startswith(f"{label}: name:")]
            problems.extend(found)

    for probe in probes:
        problems.extend(f"probe {probe.name!r}: {p}" for p in _threshold_problems(probe, REGISTRY))

    if problems:
        raise ConfigError(problems)
    probe_secrets = {p.name: frozenset(env_secrets.get(p.name, set()) | collect_secrets([p])) for p in probes}
    all_secrets = secrets.union(*probe_secrets.values())
    return agent.model_copy(update={"probes": probes, "secrets": frozenset(all_secrets), "probe_secrets": probe_secrets})


def _threshold_problems(probe: ProbeConfig, registry: Mapping[str, Any]) -> list[str]:
    known = {"duration", *registry[probe.type].values}
    return [
        f"thresholds.{key}: unknown value {key!r} for type {probe.type} (known: {', '.join(sorted(known))})"
        for key in probe.thresholds
        if key not in known
    ]


def resolve_config_path(path: str | None) -> Path:
    return Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    max_bytes: int = MAX_CONFIG_BYTES,
    allow_empty: bool = False,
) -> AgentConfig:
    """Read, parse and validate a probes file. Blocking: the daemon calls it in a worker thread."""
    text = decode(read_config_bytes(str(path), max_bytes))
    with no_cyclic_gc():
        return parse_config(text, str(path), env, allow_empty=allow_empty)


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Parsing 10,000 probes allocates millions of objects, which sets off full collections: each
    holds the GIL for ~0.2 s (a stall of the event loop while a reload parses in a worker thread)
    and together they cost a third of the parse. Nothing here makes reference cycles worth
    collecting, so collect nothing meanwhile; then freeze the survivors (the config, which lives
    until the next reload) out of the full collections that follow. Nests: the outermost
    re-enables collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
