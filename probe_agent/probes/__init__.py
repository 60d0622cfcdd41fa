"""Registry of probe types: YAML `type` -> Probe class.

Adding a type: its module (config model + probe), one line here, its tests.
The config loader finds the type's model through this map, so it never changes.
"""

from __future__ import annotations

from probe_agent.probes.base import Probe
from probe_agent.probes.http import HttpProbe
from probe_agent.probes.mysql import MysqlProbe
from probe_agent.probes.nats import NatsProbe
from probe_agent.probes.nats_jetstream import NatsJetstreamProbe
from probe_agent.probes.neo4j import Neo4jProbe
from probe_agent.probes.postgres import PostgresProbe
from probe_agent.probes.redis import RedisProbe
from probe_agent.probes.synthetic import SyntheticProbe
from probe_agent.probes.tcp import TcpProbe

REGISTRY: dict[str, type[Probe]] = {
    "http": HttpProbe,
    "tcp": TcpProbe,
    "postgres": PostgresProbe,
    "mysql": MysqlProbe,
    "redis": RedisProbe,
    "neo4j": Neo4jProbe,
    "nats": NatsProbe,
    "nats_jetstream": NatsJetstreamProbe,
    "synthetic": SyntheticProbe,
}

__all__ = ["REGISTRY", "Probe"]
