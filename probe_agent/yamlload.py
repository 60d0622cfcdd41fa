"""Reading a probes file that may be hostile: bounded, and exact about where a problem is.

PyYAML alone hangs on a billion-laughs file (aliases expand exponentially once
the data is walked), overflows the stack on deep nesting, keeps the last of two
duplicated keys silently and raises tracebacks on undecodable bytes. Here:

1. the size is capped before reading the rest (`max_bytes`);
2. bytes must be UTF-8; the first bad byte is named with its offset and line;
3. one pass over the parser's events bounds nesting without recursion;
4. the composed node graph is walked once (memoised, so aliases cost nothing
   to count) to bound the expanded size and to reject duplicate keys, naming
   both lines;
5. only then are Python objects constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

from probe_agent.errors import ConfigError

MAX_CONFIG_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
# Aliases may repeat a node (anchored defaults merged into every probe), but the
# expanded document may not grow past this many nodes beyond its written size.
MAX_ALIAS_EXPANSION = 1_000_000

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def read_config_bytes(path: str, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
    """The file's bytes; more than max_bytes is an error (nothing past the limit is read)."""
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
            if len(data) > max_bytes:
                file.seek(0, 2)
                size = file.tell()
                raise ConfigError([f"file is {size:,} bytes, over the limit of {max_bytes:,} (raise it with --max-config-bytes)"])
    except OSError as exc:
        raise ConfigError([f"cannot read config: {exc.strerror or exc}"]) from None
    return data


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            [f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); save the file as UTF-8"]
        ) from None


def load_yaml(text: str) -> Any:
    """Parse one YAML document within the bounds above. Raises ConfigError."""
    try:
        _check_depth(text)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError([_describe(exc)]) from None
    if node is None:
        return None
    _check_graph(node)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([_describe(exc)]) from None
    finally:
        loader.dispose()


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"invalid YAML{where}: {problem}"


def _check_depth(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError([f"line {event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels"])
        elif isinstance(event, _CLOSE):
            depth -= 1


def _check_graph(root: yaml.Node) -> None:
    """Expanded size (aliases counted as often as they are used) and duplicate keys, without recursion."""
    written: set[int] = set()
    size: dict[int, int] = {}  # node id -> nodes in its expansion
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[key] = 1
            written.add(key)
            continue
        children = _children(node)
        if not children_done:
            if isinstance(node, yaml.MappingNode):
                _check_duplicate_keys(node)
            written.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        total = 1 + sum(size[id(child)] for child in children)
        if total > MAX_ALIAS_EXPANSION + len(written):
            raise ConfigError(
                [f"line {node.start_mark.line + 1}: aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes"
                 " (a billion-laughs file?)"]
            )
        size[key] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return list(node.value)


def _check_duplicate_keys(node: yaml.MappingNode) -> None:
    first: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key_node.tag, key_node.value)
        line = key_node.start_mark.line + 1
        if ident in first:
            raise ConfigError([f"line {line}: duplicate key {key_node.value!r} (first on line {first[ident]})"])
        first[ident] = line
