"""The probe types: every module in this package is one, named as its YAML `type`.

Adding a type is adding its module (with `PROBE = ItsProbeClass`; see probe_agent.probe
for what a type declares), its tests and its README section. Nothing else lists the
types: the loader, /metrics, the docs and the example checks all read this registry.
Shared pieces live outside this package (datastore, httpclient, natsclient, tls, fields).

A type's module is imported the first time a config uses the type: each brings
its client library (asyncpg, neo4j, nats-py...), and an agent that only runs
HTTP probes as a sidecar should not pay their memory.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from typing import Any

from probe_agent.probe import Probe

# Found by file name, without importing anything.
PROBE_TYPES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


class _Registry(Mapping[str, type[Probe[Any]]]):
    def __init__(self) -> None:
        # /metrics looks a type up for every probe on every scrape: import once, then a dict hit.
        self._loaded: dict[str, type[Probe[Any]]] = {}

    def __getitem__(self, name: str) -> type[Probe[Any]]:
        cls = self._loaded.get(name)
        if cls is None:
            if name not in PROBE_TYPES:
                raise KeyError(name)  # as a dict would
            module = importlib.import_module(f"{__name__}.{name}")
            cls = module.PROBE
            if not (isinstance(cls, type) and issubclass(cls, Probe)):
                raise TypeError(f"probe_agent.probes.{name}.PROBE must be a Probe subclass")
            self._loaded[name] = cls
        return cls

    def __contains__(self, name: object) -> bool:
        return name in PROBE_TYPES

    def __iter__(self) -> Iterator[str]:
        return iter(PROBE_TYPES)

    def __len__(self) -> int:
        return len(PROBE_TYPES)

    def loaded(self) -> list[type[Probe[Any]]]:
        """The probe classes imported so far (only they can hold anything)."""
        return list(self._loaded.values())


REGISTRY = _Registry()


async def close_shared() -> None:
    """Close what probe types share on the running loop (the http probes' session): at the end
    of the daemon, of `check`, of a test."""
    for cls in REGISTRY.loaded():
        await cls.aclose_shared()


__all__ = ["PROBE_TYPES", "REGISTRY", "Probe", "close_shared"]
