"""Probes of every registered type, made from the type's own example (the one its docs show): tests that must
cover every type (and any added later) build theirs here."""

from __future__ import annotations

import re
from typing import Any

import yaml

from probe_agent.probes import REGISTRY


def _point_at(value: Any, port: int) -> Any:
    """The example's addresses, all moved to 127.0.0.1:port, in plain text."""
    if isinstance(value, str) and "://" in value:
        scheme, _, rest = value.partition("://")
        path = rest.partition("/")[2]
        return f"{scheme.replace('https', 'http').replace('rediss', 'redis')}://127.0.0.1:{port}/{path}"
    if isinstance(value, list):
        return [_point_at(item, port) for item in value]
    return value


def hostile_definition(type_name: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    cls = REGISTRY[type_name]
    example = yaml.safe_load(re.sub(r"\$\{[A-Z_]+:-\}", "", cls.example))[0]
    fields = cls.config_model.model_fields
    definition: dict[str, Any] = {}
    for key, value in example.items():
        if key in ("thresholds", "ca_file", "cert_file", "key_file", "tls", "pool"):
            continue
        if key in ("host", "server"):
            definition[key] = "127.0.0.1"
        elif key == "port":
            definition[key] = port
        else:
            definition[key] = _point_at(value, port)
    if "port" in fields:
        definition["port"] = port
    if "transport_protocol" in fields:
        definition["transport_protocol"] = "tcp"  # the hostile servers speak TCP
    return {**definition, "name": f"hostile-{type_name}", "interval": "60s", "timeout": f"{timeout}s"}
