"""A small path syntax for JSON bodies: `status`, `checks.db.status`, `items[0].id`, `$.status`."""

from __future__ import annotations

import re
from typing import Any

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
        if (isinstance(part, int) and isinstance(node, list) and -len(node) <= part < len(node)) or (isinstance(part, str) and isinstance(node, dict) and part in node):
            node = node[part]  # type: ignore[index]  # the isinstance pairs above match index to container
        else:
            raise PathNotFound(path)
    return node
