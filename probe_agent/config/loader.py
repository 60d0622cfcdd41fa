"""probes.yaml: typed models, ${ENV} expansion, defaults, and errors by probe and field.

Loading never stops at the first problem: every probe is validated and every
problem is reported as `probe 'NAME': FIELD: what is wrong`, so one
`probe-agent validate` run shows the whole list.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from probe_agent.config.sources import SourceKey, SourceState
from probe_agent.core.defaults import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, MAX_CONFIG_BYTES
from probe_agent.core.errors import ConfigError, did_you_mean, first_names
from probe_agent.core.loopmonitor import DEFAULT_LAG_TOLERANCE
from probe_agent.core.redact import Redactor, collect_secrets
from probe_agent.core.yamlload import decode, load_yaml, locate, positions, read_config_bytes
from probe_agent.probes import REGISTRY
from probe_agent.probes.base import ProbeConfig
from probe_agent.probes.registry import ProbeTypeUnavailable
from probe_agent.schema.discovery import TargetGroup
from probe_agent.schema.fields import DEFAULT_BUCKETS, Buckets, Duration, Interval, Timeout, parse_duration
from probe_agent.schema.maintenance import MaintenanceWindow
from probe_agent.schema.probe_endpoint import ProbeEndpoint
from probe_agent.schema.slo import Slo, slo_members
from probe_agent.schema.statuspage import StatusPageSettings

ModelT = TypeVar("ModelT", bound=BaseModel)


class Defaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    interval: Interval = 30.0
    timeout: Timeout = 10.0
    failure_threshold: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)
    buckets: Buckets = ()  # probe_run_duration_seconds bounds; empty: only the declared limits
    metrics: Literal["default", "full"] | None = None  # as a probe's `metrics` (probe_agent.probes.base)


class AgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    defaults: Defaults = Defaults()
    max_concurrency: int = Field(64, ge=1)  # probe runs in flight at once, all probes together
    max_concurrency_per_target: int = Field(32, ge=1)  # runs in flight against one host:port
    # A run during which the event loop was later than this is marked distorted.
    loop_lag_tolerance: Duration = DEFAULT_LAG_TOLERANCE
    probes: list[ProbeConfig] = []
    slos: list[Slo] = []  # objectives over groups of probes; `probe-agent rules` writes their alerts
    maintenance: list[MaintenanceWindow] = []  # scheduled windows (probe_agent.schema.maintenance)
    # probes made from discovered targets (probe_agent.schema.discovery), and the files they came from
    target_groups: list[TargetGroup] = []
    probe_endpoint: ProbeEndpoint | None = None  # GET /probe, as blackbox_exporter's (off without it)
    status_page: StatusPageSettings = StatusPageSettings()  # its title, environment, grouping
    discovery_files: tuple[str, ...] = ()
    discovered_group: dict[str, str] = {}  # discovered probe -> its target group
    # what each source of each group gave (the daemon hands them to the next load)
    discovery_sources: dict[SourceKey, SourceState] = {}
    # Every probe name in the file, also those a selection left out (for `check --probe` errors).
    all_probe_names: tuple[str, ...] = ()
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
                problems.append(
                    f"{path}: environment variable {var} is not set (use ${{{var}:-default}} for a default)"
                )
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


_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _path_of(text: str) -> tuple[str | int, ...]:
    """'steps[0].extract' -> ('steps', 0, 'extract'); anything else -> ()."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*", text):
        return ()
    return tuple(name or int(index) for name, index in _PATH_PART.findall(text))


def _pydantic_problems(prefix: str, exc: ValidationError) -> list[str]:
    return [text for text, _loc in _located_problems(prefix, exc)]


def _located_problems(
    prefix: str, exc: ValidationError, model: type[BaseModel] | None = None
) -> list[tuple[str, tuple[str | int, ...]]]:
    """Each error as text, with the path of its field in the input (for line:column)."""
    problems = []
    for err in exc.errors(include_url=False):
        msg, given = err["msg"].removeprefix("Value error, "), err.get("input")
        if err["type"] in ("literal_error", "enum") and isinstance(given, str):
            # one of a known set, misspelt: Input should be 'disable', 'prefer', 'require'...
            msg += did_you_mean(given, tuple(re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))))
        loc = tuple(item for item in err["loc"] if isinstance(item, int) or not ("[" in str(item) and "(" in str(item)))
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            if model is not None and len(loc) == 1:
                known = {name for name, f in model.model_fields.items() if name != "type"} | {
                    f.alias for f in model.model_fields.values() if f.alias
                }
                msg += did_you_mean(str(loc[0]), tuple(sorted(known)))
        # A model-level rule names its field at the start of its message itself.
        field = _field_path(err["loc"])
        if not loc:
            loc = _path_of(msg.split(": ", 1)[0])
        problems.append((f"{prefix}{field}: {msg}" if field else f"{prefix}{msg}", loc))
    return problems


@dataclass(frozen=True)
class Selection:
    """The probes `check` runs, chosen before anything is validated: a probe left out is not
    validated and its ${VAR} not resolved (an unset variable of an unrelated probe must not
    stop a check at 3 a.m.). Empty names and tags select everything."""

    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def wants(self, entry: Mapping[str, Any]) -> bool:
        tags = entry.get("tags")
        tags = tags if isinstance(tags, list) else []
        return (not self.names or entry.get("name") in self.names) and (
            not self.tags or any(t in tags for t in self.tags)
        )


@dataclass
class _Problems:
    """Every problem found in one pass, and where in the file each is (for line:column)."""

    items: list[str] = field(default_factory=list)
    where: dict[int, tuple[str | int, ...]] = field(default_factory=dict)  # problem index -> path in the file

    def add(self, text: str, path: tuple[str | int, ...] | None = None) -> None:
        if path is not None:
            self.where[len(self.items)] = path
        self.items.append(text)

    def raise_if_any(self, text: str) -> None:
        if self.items:
            found = positions(text) if self.where else {}
            located = [locate(found, self.where[i]) if i in self.where else None for i in range(len(self.items))]
            raise ConfigError(self.items, located)


def parse_config(
    text: str,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    *,
    allow_empty: bool = False,
    selection: Selection | None = None,
    discovery: dict[SourceKey, SourceState] | None = None,
    answers: dict[SourceKey, SourceState] | None = None,
) -> AgentConfig:
    """Parse and validate a probes.yaml text. Raises ConfigError listing every problem.
    `discovery`: what the target groups' sources gave at the last load (the daemon's; see
    probe_agent.config.discovery.SourceState); without it a failing source is a problem.
    `answers`: sources a refresh has just read, taken as they are (not asked again).

    Top-level keys starting with `x-` are ignored: they hold YAML anchors, as in compose files.
    With a selection, only the probes it wants are validated and kept (and no SLOs)."""
    env = os.environ if env is None else env
    problems = _Problems()
    raw = _top_level(text, allow_empty, problems)
    raw_probes = raw.pop("probes", None) or []
    secrets: set[str] = set()
    agent, maintenance_indices = _agent_settings(raw, env, problems, secrets, selection)
    if not isinstance(raw_probes, list):
        raise ConfigError([*problems.items, "probes: expected a list of probes"])
    origins: list[tuple[str | int, ...]] = [("probes", index) for index in range(len(raw_probes))]
    if agent.target_groups:
        # the readers (files, http_sd, DNS, Kubernetes) load only for a file that has groups
        from probe_agent.config.discovery import discovered_probes, discovery_base

        base = discovery_base(source)
        discovered, group_indexes, files, sources = discovered_probes(
            agent.target_groups, base, problems.items, discovery, answers
        )
        origins += [("target_groups", index, "probe") for index in group_indexes]
        raw_probes = [*raw_probes, *discovered]
        by_name = {
            str(entry["name"]): agent.target_groups[index].name
            for entry, index in zip(discovered, group_indexes, strict=True)
        }
        agent = agent.model_copy(
            update={"discovery_files": files, "discovered_group": by_name, "discovery_sources": sources}
        )
    probes, index_of, env_secrets = _parse_probes(
        raw_probes, agent.defaults.model_dump(), env, problems, selection, origins
    )
    for probe in probes:
        for problem_text in _threshold_problems(probe):
            field_path = problem_text.split(":", 1)[0].split(".")
            problems.add(f"probe {probe.name!r}: {problem_text}", (*origins[index_of[probe.name]], *field_path))
    slo_limits = _slo_problems_and_limits(agent.slos, probes, problems)
    counted = {name for slo in agent.slos for name in slo_members(slo, probes)}
    probes = [
        with_limit_buckets(probe, tuple(slo_limits.get(probe.name, ())), probe.name in counted) for probe in probes
    ]
    all_names = tuple(e["name"] for e in raw_probes if isinstance(e, dict) and isinstance(e.get("name"), str))
    problems.items.extend(
        _maintenance_problems(
            agent.maintenance, maintenance_indices, probes if selection is None else [], set(all_names)
        )
    )
    problems.raise_if_any(text)
    probe_secrets = {p.name: frozenset(env_secrets.get(p.name, set()) | collect_secrets([p])) for p in probes}
    return agent.model_copy(
        update={
            "probes": probes,
            "secrets": frozenset(secrets.union(*probe_secrets.values())),
            "probe_secrets": probe_secrets,
            "all_probe_names": all_names,
        }
    )


def _top_level(text: str, allow_empty: bool, problems: _Problems) -> dict[str, Any]:
    """The file's top-level mapping, without its x- keys."""
    raw = load_yaml(text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["expected a mapping with a 'probes' list at the top level"])
    raw = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.startswith("x-"))}
    if not raw.get("probes") and not raw.get("target_groups") and not allow_empty:
        problems.add("no probes configured: add probes under 'probes:' (or pass --allow-empty to run with none)")
    return raw


def _agent_settings(
    raw: dict[str, Any], env: Mapping[str, str], problems: _Problems, secrets: set[str], selection: Selection | None
) -> tuple[AgentConfig, list[int]]:
    """Everything but the probes: the agent's own settings, its SLOs and maintenance windows
    (and the index in the file of each window)."""
    raw_slos = raw.pop("slos", None) or []
    raw_maintenance = raw.pop("maintenance", None) or []
    raw_groups = raw.pop("target_groups", None) or []
    raw_endpoint = raw.pop("probe_endpoint", None)
    maintenance_indices: list[int] = []
    top = _expand(raw, env, "", problems.items, secrets)
    try:
        agent = AgentConfig.model_validate(top)
    except ValidationError as exc:
        problems.items.extend(_pydantic_problems("", exc))
        agent = AgentConfig()
    # `check` selects probes and keeps no SLOs, but a bad entry is as bad for it as for validate
    slos = _parse_entries("slos", Slo, raw_slos, env, problems.items, secrets)
    windows = _parse_entries(
        "maintenance", MaintenanceWindow, raw_maintenance, env, problems.items, secrets, maintenance_indices
    )
    groups = _parse_entries("target_groups", TargetGroup, raw_groups, env, problems.items, secrets, unexpanded="probe")
    agent = agent.model_copy(
        update={
            "slos": slos if selection is None else [],
            "maintenance": windows,
            "target_groups": groups,
            "probe_endpoint": _probe_endpoint(raw_endpoint, env, problems.items, secrets),
        }
    )
    return agent, maintenance_indices


def _probe_endpoint(raw: Any, env: Mapping[str, str], problems: list[str], secrets: set[str]) -> ProbeEndpoint | None:
    """The /probe endpoint's settings; its modules' templates keep their ${VAR}s (expanded per
    run, as a target group's are per probe)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("probe_endpoint: expected a mapping with 'modules'")
        return None
    modules = raw.get("modules")
    templates: dict[str, Any] = {}
    if isinstance(modules, dict):
        templates = {name: m.pop("probe") for name, m in modules.items() if isinstance(m, dict) and "probe" in m}
    expanded = _expand(raw, env, "probe_endpoint", problems, secrets)
    for name, template in templates.items():
        expanded["modules"][name]["probe"] = template
    try:
        return ProbeEndpoint.model_validate(expanded)
    except ValidationError as exc:
        problems.extend(_pydantic_problems("probe_endpoint: ", exc))
        return None


def probe_from_template(entry: dict[str, Any], env: Mapping[str, str]) -> tuple[ProbeConfig, frozenset[str]]:
    """One probe made from a filled-in template, outside a probes file (GET /probe), through
    the same steps as a probe entry of the file: ${VAR}s expanded, validated by its type's model.
    Its secrets come with it. Raises ConfigError."""
    problems = _Problems()
    env_secrets: dict[str, set[str]] = {}
    probe = _parse_probe(0, (), entry, Defaults().model_dump(), env, problems, {}, env_secrets, [])
    if probe is None:
        raise ConfigError(problems.items or ["the module's probe is not valid"])
    return probe, frozenset(env_secrets.get(probe.name, set()) | collect_secrets([probe]))


def _parse_probes(
    raw_probes: list[Any],
    defaults: dict[str, Any],
    env: Mapping[str, str],
    problems: _Problems,
    selection: Selection | None,
    origins: list[tuple[str | int, ...]],
) -> tuple[list[ProbeConfig], dict[str, int], dict[str, set[str]]]:
    """The valid probes (those the selection wants), each one's index in the file, and the
    secrets its ${VAR}s brought; every problem of the others, by probe and field."""
    probes: list[ProbeConfig] = []
    seen: dict[str, int] = {}
    index_of: dict[str, int] = {}
    env_secrets: dict[str, set[str]] = {}
    timed_by_defaults: list[str] = []  # probes whose interval and timeout both come from defaults
    for index, entry in enumerate(raw_probes):
        if not isinstance(entry, dict):
            problems.add(f"probes[{index}]: expected a mapping with 'name' and 'type'", origins[index])
            continue
        if selection is not None and not selection.wants(entry):
            continue
        probe = _parse_probe(
            index, origins[index], entry, defaults, env, problems, seen, env_secrets, timed_by_defaults
        )
        if probe is not None:
            probes.append(probe)
            index_of[probe.name] = index
    if timed_by_defaults:
        # the defaults' mistake, said once where it is written, not on every probe's line
        problems.add(
            f"defaults: {_timing_problem(defaults)} (the probes that set neither: {first_names(timed_by_defaults, 10)})",
            ("defaults", "timeout"),
        )
    return probes, index_of, env_secrets


def _parse_probe(
    index: int,
    origin: tuple[str | int, ...],
    entry: dict[str, Any],
    defaults: dict[str, Any],
    env: Mapping[str, str],
    problems: _Problems,
    seen: dict[str, int],
    env_secrets: dict[str, set[str]],
    timed_by_defaults: list[str],
) -> ProbeConfig | None:
    """One probe entry validated by its type's own model, or None with its problems added."""
    name = entry.get("name")
    # a name is at most 128 characters; a longer one is shown cut, not 100,000 times over
    shown = name if isinstance(name, str) and len(name) <= 128 else f"{str(name)[:60]}…"
    label = f"probe {shown!r}" if isinstance(name, str) and name else f"probes[{index}]"
    if isinstance(name, str):
        if name in seen:
            problems.add(f"{label}: name: duplicate name (also probes[{seen[name]}])", (*origin, "name"))
        seen.setdefault(name, index)
    else:
        problems.add(f"{label}: name: required, a string", origin)
    probe_type = entry.get("type")
    if not isinstance(probe_type, str) or probe_type not in REGISTRY:
        known = tuple(sorted(REGISTRY))
        hint = did_you_mean(probe_type, known) if isinstance(probe_type, str) else ""
        problems.add(
            f"{label}: type: unknown probe type {probe_type!r}{hint} (known: {', '.join(known)})",
            (*origin, "type"),
        )
        return None
    try:
        model = REGISTRY[probe_type].config_model
    except ProbeTypeUnavailable as exc:
        problems.add(f"{label}: type: {exc}", (*origin, "type"))
        return None
    env_problems: list[str] = []
    own_secrets: set[str] = set()
    expanded = _expand(entry, env, "", env_problems, own_secrets)
    if isinstance(name, str):
        env_secrets[name] = own_secrets
    # A field whose variable is unset holds an empty string: its own errors would only
    # follow from that; every other field is still checked, so one pass shows everything.
    unset = {p.split(":", 1)[0].split(".")[0].split("[")[0] for p in env_problems}
    for problem in env_problems:
        problems.add(f"{label}: {problem}", (*origin, problem.split(":", 1)[0].split(".")[0].split("[")[0]))
    merged = {**defaults, **expanded}
    timing = _timing_problem(merged)
    if timing and "interval" not in expanded and "timeout" not in expanded:
        timed_by_defaults.append(shown)  # said once, at the defaults (_parse_probes)
    elif timing:
        problems.add(f"{label}: {timing}", (*origin, "timeout" if "timeout" in expanded else "interval"))
    try:
        probe = model.model_validate(merged)
    except ValidationError as exc:
        for problem_text, loc in _located_problems(f"{label}: ", exc, model):
            if (loc and loc[0] in unset) or (not isinstance(name, str) and loc[:1] == ("name",)):
                continue
            problems.add(problem_text, (*origin, *loc))
        return None
    return probe if not env_problems and not timing else None


def _slo_problems_and_limits(slos: list[Slo], probes: list[ProbeConfig], problems: _Problems) -> dict[str, set[float]]:
    """Problems of SLOs that name no probe; the latency limit each probe's SLOs put on it (a
    bucket bound of its histogram, so the SLO's ratio is exact)."""
    slo_limits: dict[str, set[float]] = {}
    names = {p.name for p in probes}
    for index, slo in enumerate(slos):
        label = f"slos[{index}] ({slo.name})"
        problems.items.extend(
            f"{label}: probes: no probe named {name!r}" + did_you_mean(name, names)
            for name in slo.probes
            if name not in names
        )
        members = slo_members(slo, probes)
        if not members and slo.tags:
            problems.add(f"{label}: no probe has any of the tags {', '.join(slo.tags)}")
        if slo.latency is not None:
            for name in members:
                slo_limits.setdefault(name, set()).add(slo.latency.threshold)
    return slo_limits


def _threshold_problems(probe: ProbeConfig) -> list[str]:
    # an info value (probe_tls_version_info) is always 1: nothing to hold a limit against
    known = {"duration", *(name for name, spec in REGISTRY[probe.type].values.items() if not spec.labels)}
    return [
        f"thresholds.{key}: unknown value {key!r} for type {probe.type} (known: {', '.join(sorted(known))})"
        for key in probe.thresholds
        if key not in known
    ]


def _parse_entries(
    key: str,
    model: type[ModelT],
    raw: Any,
    env: Mapping[str, str],
    problems: list[str],
    secrets: set[str],
    indices: list[int] | None = None,
    unexpanded: str | None = None,
) -> list[ModelT]:
    """Each entry of a top-level list (slos, maintenance) on its own, so one bad entry does not
    hide the problems of the others. `unexpanded`: a key whose value keeps its ${VAR}s (a target
    group's template: expanded once per probe made from it, as any probe entry is)."""
    if not isinstance(raw, list):
        problems.append(f"{key}: expected a list")
        return []
    entries = []
    for index, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"{key}[{index}] ({name})" if isinstance(name, str) else f"{key}[{index}]"
        try:
            if unexpanded is not None and isinstance(entry, dict) and unexpanded in entry:
                rest = {k: v for k, v in entry.items() if k != unexpanded}
                expanded = {**_expand(rest, env, "", problems, secrets), unexpanded: entry[unexpanded]}
            else:
                expanded = _expand(entry, env, "", problems, secrets)
            entries.append(model.model_validate(expanded))
            if indices is not None:
                indices.append(index)  # where each valid entry was in the file, for its problems
        except ValidationError as exc:
            problems.extend(_pydantic_problems(f"{label}: ", exc))
    return entries


def _maintenance_problems(
    windows: list[MaintenanceWindow], indices: list[int], probes: list[ProbeConfig], all_names: set[str]
) -> list[str]:
    problems, seen = [], set()
    tags = {tag for probe in probes for tag in probe.tags}
    for index, window in zip(indices, windows, strict=True):
        label = f"maintenance[{index}] ({window.name})"
        if window.name in seen:
            problems.append(f"{label}: name: duplicate name")
        seen.add(window.name)
        problems.extend(
            f"{label}: probes: no probe named {name!r}" + did_you_mean(name, all_names)
            for name in window.probes
            if name not in all_names
        )
        if probes and window.tags and not tags.intersection(window.tags):
            problems.append(f"{label}: tags: no probe has any of the tags {', '.join(window.tags)}")
    return problems


def _timing_problem(merged: Mapping[str, Any]) -> str:
    """timeout must be shorter than interval. Checked here, not by a model rule: a model rule
    that fails stops the type's own, whose problems would show only once this one is fixed."""
    try:
        interval, timeout = parse_duration(merged.get("interval")), parse_duration(merged.get("timeout"))
    except ValueError:
        return ""  # the field's own error says so
    if timeout >= interval:
        return f"timeout: {timeout:g}s must be shorter than interval ({interval:g}s)"
    return ""


def with_limit_buckets(probe: ProbeConfig, limits: tuple[float, ...] = (), counted: bool = False) -> ProbeConfig:
    """The probe with its final histogram bounds: its own, plus every duration limit it declares
    and `limits` (SLO thresholds), so `le="0.3"` exists when 300 ms matters. Without bounds of its
    own, a probe within the series budget has only those (each bound is a series per probe); one
    with `metrics: full` has the defaults below its timeout and the timeout (a run lasts no longer,
    so a bound above it is +Inf again, and the last one below it must not make every slow run look
    as fast). `counted`: an SLO counts its runs, so unless it says otherwise it is `full`."""
    if counted and probe.metrics is None:
        probe = probe.model_copy(update={"metrics": "full"})
    defaults = (*(b for b in DEFAULT_BUCKETS if b < probe.timeout), probe.timeout) if probe.metrics == "full" else ()
    bounds = set(probe.buckets or defaults) | set(limits) | set(probe.duration_limits())
    duration = probe.thresholds.get("duration")
    if duration is not None:
        bounds |= {end for limit in (duration.warning, duration.critical) if limit is not None for end in limit.ends()}
    final = tuple(sorted(bounds))
    return probe if final == probe.buckets else probe.model_copy(update={"buckets": final})


def resolve_config_path(path: str | None) -> Path:
    return Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    max_bytes: int = MAX_CONFIG_BYTES,
    allow_empty: bool = False,
    selection: Selection | None = None,
    discovery: dict[SourceKey, SourceState] | None = None,
    answers: dict[SourceKey, SourceState] | None = None,
) -> AgentConfig:
    """Read, parse and validate a probes file. Blocking: the daemon calls it in a worker thread."""
    text = decode(read_config_bytes(str(path), max_bytes))
    with no_cyclic_gc():
        return parse_config(
            text, str(path), env, allow_empty=allow_empty, selection=selection, discovery=discovery, answers=answers
        )


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
