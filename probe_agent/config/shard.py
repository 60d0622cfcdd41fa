"""Sharding: N replicas split the probes, each probe on exactly one of them.

Rendezvous (highest random weight) hashing on the probe's name: each replica scores every
probe, and a probe belongs to the replica that scores it highest. Going from N to N+1
replicas moves only the probes the new replica wins, about 1/(N+1) of them; nothing moves
between the others. A probe with `every_shard: true` (a node-local check run by a DaemonSet)
runs on every replica.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from probe_agent.config.loader import AgentConfig
from probe_agent.probes.base import ProbeConfig


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str, hostname: str = "") -> Shard:
        """'1/3', or 'auto/3': the index is the ordinal at the end of a StatefulSet pod's name
        (`probe-agent-1`, from $HOSTNAME)."""
        index_text, sep, count_text = text.partition("/")
        if not sep or not count_text.isdigit() or int(count_text) < 1:
            raise ValueError(f"invalid shard {text!r}: expected INDEX/COUNT such as 0/3, or auto/3")
        count = int(count_text)
        if index_text == "auto":
            ordinal = re.search(r"-(\d+)$", hostname)
            if not ordinal:
                raise ValueError(
                    f"--shard auto/{count}: the host name {hostname!r} does not end in -ORDINAL (a StatefulSet pod's)"
                )
            index_text = ordinal.group(1)
        if not index_text.isdigit() or int(index_text) >= count:
            raise ValueError(f"invalid shard {text!r}: the index must be 0 to {count - 1}")
        return cls(int(index_text), count)

    def owns(self, probe: ProbeConfig) -> bool:
        return probe.every_shard or self.owner(probe.name) == self.index

    def owner(self, name: str) -> int:
        return max(range(self.count), key=lambda replica: _score(name, replica))

    def select(self, config: AgentConfig) -> AgentConfig:
        """The config with this replica's probes only."""
        return config.model_copy(update={"probes": [p for p in config.probes if self.owns(p)]})


def _score(name: str, replica: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{replica}\x00{name}".encode(), digest_size=8).digest(), "big")
