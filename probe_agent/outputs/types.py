"""`probe-agent types`: every probe type the agent knows, built-in or installed (an entry point),
with where it comes from, what it checks, its own fields, its metrics and an example. For an
out-of-tree type this is its reference: docs/probe-types.md documents the built-in ones."""

from __future__ import annotations

import json
import sys
import typing
from collections.abc import Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from probe_agent.probes.base import Probe, ProbeConfig

COMMON_FIELDS = frozenset(ProbeConfig.model_fields)


def _annotation(field: FieldInfo) -> str:
    text = str(field.annotation) if typing.get_origin(field.annotation) else getattr(field.annotation, "__name__", "")
    return (
        (text or str(field.annotation))
        .replace("typing.", "")
        .replace("pydantic.types.", "")
        .replace("NoneType", "None")
    )


def _default(field: FieldInfo) -> Any:
    if field.is_required():
        return None
    value = field.get_default(call_default_factory=True) if field.default is PydanticUndefined else field.default
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def describe(name: str, cls: type[Probe[Any]], origin: str) -> dict[str, Any]:
    model = cls.config_model
    fields = [
        {"name": field_name, "type": _annotation(field), "required": field.is_required(), "default": _default(field)}
        for field_name, field in model.model_fields.items()
        if field_name not in COMMON_FIELDS
    ]
    metrics = sorted({spec.metric for spec in cls.values.values() if spec.metric} | ({cls.phase_metric} - {""}))
    module = sys.modules.get(cls.__module__)
    doc = ((module.__doc__ if module is not None else None) or cls.__doc__ or "").strip()
    return {
        "type": name,
        "origin": origin,
        "summary": doc.splitlines()[0] if doc else "",
        "fields": fields,
        "default_port": model.default_port or None,
        "metrics": metrics,
        "example": cls.example,
    }


def describe_all(registry: Mapping[str, type[Probe[Any]]], origin: typing.Callable[[str], str]) -> list[dict[str, Any]]:
    return [describe(name, registry[name], origin(name)) for name in registry]


def render_text(types: list[dict[str, Any]]) -> str:
    out = []
    for entry in types:
        out.append(f"{entry['type']}  ({entry['origin']})")
        if entry["summary"]:
            out.append(f"  {entry['summary']}")
        out.append("  fields (besides the ones every probe has: name, interval, timeout, labels, thresholds, ...):")
        for field in entry["fields"]:
            default = "required" if field["required"] else f"default {json.dumps(field['default'])}"
            out.append(f"    {field['name']}: {field['type']}  ({default})")
        if entry["default_port"]:
            out.append(f"  default port: {entry['default_port']}")
        if entry["metrics"]:
            out.append(f"  metrics: {', '.join(entry['metrics'])}")
        if entry["example"]:
            out.append("  example:")
            out.extend(f"    {line}" for line in entry["example"].rstrip().splitlines())
        out.append("")
    return "\n".join(out)
