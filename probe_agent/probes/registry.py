"""The probe types by YAML `type`: the built-in ones listed here, and any an installed
distribution declares in the entry-point group `probe_agent.probe_types`.

A type is imported the first time a config uses it: each brings its client library (asyncpg,
neo4j, nats-py...), and an agent that only runs HTTP probes as a sidecar should not pay their
memory. Finding the types imports nothing: the built-ins are names here, and entry points are
read from the installed distributions' metadata.

An out-of-tree type is a module or class of its own distribution, declared in its
pyproject.toml as

    [project.entry-points."probe_agent.probe_types"]
    smtp = "acme_probes.smtp:SmtpProbe"

and is then validated, run, exported and listed (`probe-agent types`) like a built-in. The
entry point names a Probe subclass, or a module that sets `PROBE` to one (as the built-ins do).
A name a built-in has is refused, so an installed package cannot replace `http` unseen.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from probe_agent.probes.base import Probe

log = logging.getLogger("probe_agent.probes")

ENTRY_POINT_GROUP = "probe_agent.probe_types"

BUILTIN: dict[str, str] = {
    name: f"probe_agent.probes.types.{name}"
    for name in (
        "amqp",
        "dns",
        "grpc",
        "http",
        "mysql",
        "nats",
        "nats_jetstream",
        "neo4j",
        "postgres",
        "redis",
        "synthetic",
        "tcp",
    )
}


# The built-in types whose client library is not in the core install, and the extra that brings
# it (pyproject.toml's optional-dependencies): a sidecar that runs http probes does not carry
# grpcio, asyncpg and the neo4j driver. `pip install 'probe-agent[all]'` brings every one.
EXTRAS: dict[str, str] = {
    "amqp": "amqp",
    "grpc": "grpc",
    "mysql": "mysql",
    "nats": "nats",
    "nats_jetstream": "nats",
    "neo4j": "neo4j",
    "postgres": "postgres",
    "redis": "redis",
}


class ProbeTypeUnavailable(ImportError):
    """A built-in type whose extra is not installed: which library is missing and how to get it."""

    def __init__(self, type_name: str, library: str, extra: str):
        self.type_name, self.library, self.extra = type_name, library, extra
        self.remedy = f"pip install 'probe-agent[{extra}]'"
        super().__init__(f"probe type {type_name!r} needs {library}, which is not installed: {self.remedy}")


def _import_builtin(name: str) -> Any:
    try:
        return importlib.import_module(BUILTIN[name])
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        # only a library the extra brings; a module of probe-agent's own missing is a bug, said as one
        if name not in EXTRAS or not missing or missing == "probe_agent":
            raise
        raise ProbeTypeUnavailable(name, missing, EXTRAS[name]) from None


def _declared() -> dict[str, EntryPoint]:
    """Out-of-tree types, by name; a name taken by a built-in or declared twice is refused (logged)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in BUILTIN:
            log.warning(
                "ignored probe type %r from entry point %s: a built-in type has that name", point.name, point.value
            )
        elif point.name in found and found[point.name].value != point.value:
            log.warning(
                "ignored probe type %r from entry point %s: %s declares it too",
                point.name,
                point.value,
                found[point.name].value,
            )
        else:
            found[point.name] = point
    return found


def _as_probe_class(name: str, obj: Any, where: str) -> type[Probe[Any]]:
    cls = getattr(obj, "PROBE", obj)  # a module that sets PROBE, or the class itself
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise TypeError(f"probe type {name!r} ({where}) is not a probe_agent Probe subclass")
    declared = cls.config_model.model_fields["type"].annotation
    if getattr(declared, "__args__", None) != (name,):
        raise TypeError(f"probe type {name!r} ({where}): its config_model's `type` must be Literal[{name!r}]")
    return cls


class _Registry(Mapping[str, type[Probe[Any]]]):
    def __init__(self) -> None:
        self._external = _declared()
        self.names = tuple(sorted([*BUILTIN, *self._external]))
        # /metrics looks a type up for every probe on every scrape: import once, then a dict hit.
        self._loaded: dict[str, type[Probe[Any]]] = {}
        # a type whose extra is missing, said once: a file of 10,000 such probes is not 10,000 imports
        self._unavailable: dict[str, ProbeTypeUnavailable] = {}

    def __getitem__(self, name: str) -> type[Probe[Any]]:
        cls = self._loaded.get(name)
        if cls is None:
            if name in self._unavailable:
                raise self._unavailable[name]
            if name in BUILTIN:
                try:
                    module = _import_builtin(name)
                except ProbeTypeUnavailable as exc:
                    self._unavailable[name] = exc
                    raise
                cls = _as_probe_class(name, module, BUILTIN[name])
            elif name in self._external:
                point = self._external[name]
                cls = _as_probe_class(name, point.load(), f"entry point {point.value}")
            else:
                raise KeyError(name)  # as a dict would
            self._loaded[name] = cls
        return cls

    def __contains__(self, name: object) -> bool:
        return name in BUILTIN or name in self._external

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def unavailable(self, name: str) -> ProbeTypeUnavailable | None:
        """Why a known type cannot be loaded here (its extra is not installed), or None."""
        try:
            self[name]
        except ProbeTypeUnavailable as exc:
            return exc
        return None

    def builtin(self, name: str) -> bool:
        return name in BUILTIN

    def origin(self, name: str) -> str:
        """Where a type comes from: the built-in module, or the entry point's distribution."""
        if name in BUILTIN:
            return "built-in"
        point = self._external[name]
        dist = point.dist
        return f"{dist.name} {dist.version}" if dist is not None else point.value

    def loaded(self) -> list[type[Probe[Any]]]:
        """The probe classes imported so far (only they can hold anything)."""
        return list(self._loaded.values())


REGISTRY = _Registry()
PROBE_TYPES = REGISTRY.names


async def close_shared() -> None:
    """Close what probe types share on the running loop (the http probes' session): at the end
    of the daemon, of `check`, of a test."""
    for cls in REGISTRY.loaded():
        await cls.aclose_shared()
