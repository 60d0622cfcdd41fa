"""Registry of probe types: YAML `type` -> Probe class, in module probe_agent.probes.<type>.

Adding a type: its module (config model + probe), one line here, its tests.
The config loader finds the type's model through this map, so it never changes.

A type's module is imported the first time a config uses the type: each brings
its client library (asyncpg, neo4j, nats-py...), and an agent that only runs
HTTP probes as a sidecar should not pay their memory.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from probe_agent.probes.base import Probe

PROBE_CLASSES = {
    "http": "HttpProbe",
    "tcp": "TcpProbe",
    "postgres": "PostgresProbe",
    "mysql": "MysqlProbe",
    "redis": "RedisProbe",
    "neo4j": "Neo4jProbe",
    "nats": "NatsProbe",
    "nats_jetstream": "NatsJetstreamProbe",
    "synthetic": "SyntheticProbe",
}


class _Registry(Mapping[str, type[Probe]]):
    def __init__(self) -> None:
        # /metrics looks a type up for every probe on every scrape: import once, then a dict hit.
        self._loaded: dict[str, type[Probe]] = {}

    def __getitem__(self, name: str) -> type[Probe]:
        cls = self._loaded.get(name)
        if cls is None:
            class_name = PROBE_CLASSES[name]  # KeyError for an unknown type, as a dict would
            cls = self._loaded[name] = getattr(importlib.import_module(f"{__name__}.{name}"), class_name)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(PROBE_CLASSES)

    def __len__(self) -> int:
        return len(PROBE_CLASSES)

    def loaded(self) -> list[type[Probe]]:
        """The probe classes imported so far (only they can hold anything)."""
        return list(self._loaded.values())


REGISTRY = _Registry()


async def close_shared() -> None:
    """Close what probe types share on the running loop (the http probes' session): at the end
    of the daemon, of `check`, of a test."""
    for cls in REGISTRY.loaded():
        await cls.aclose_shared()


__all__ = ["REGISTRY", "Probe", "close_shared"]
