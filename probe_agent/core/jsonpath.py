"""JSON from outside: a parser that survives hostile nesting, and a small path syntax for JSON
bodies: `status`, `checks.db.status`, `items[0].id`, `$.status`."""

from __future__ import annotations

import json
import re
from typing import Any


def loads(data: bytes | str) -> Any:
    """json.loads, with a body nested deeper than the interpreter's stack (`[[[[...` from a
    target or a client of the agent) refused as invalid JSON (a ValueError), not a RecursionError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


class PathNotFound(LookupError):
    pass


def parse_path(path: str) -> tuple[str | int, ...]:
    text = path.strip()
    text = text[1:] if text.startswith("$") else text
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"invalid JSON path {path!r}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not parts:
        raise ValueError(f"invalid JSON path {path!r}")
    return tuple(parts)


def lookup(document: Any, path: str) -> Any:
    node = document
    for part in parse_path(path):
        if (isinstance(part, int) and isinstance(node, list) and -len(node) <= part < len(node)) or (
            isinstance(part, str) and isinstance(node, dict) and part in node
        ):
            node = node[part]  # type: ignore[index]  # the isinstance pairs above match index to container
        else:
            raise PathNotFound(path)
    return node
