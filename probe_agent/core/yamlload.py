"""Reading a probes file that may be hostile: bounded, and exact about where a problem is.

PyYAML alone hangs on a billion-laughs file (aliases expand exponentially once
the data is walked), overflows the stack on deep nesting, keeps the last of two
duplicated keys silently and raises tracebacks on undecodable bytes. Here:

1. the size is capped before reading the rest (`max_bytes`);
2. bytes must be UTF-8; the first bad byte is named with its offset and line;
3. nodes are composed from the parser's events in one loop of our own, with
   no recursion, bounding nesting as they come (libyaml's own composer runs
   in C for the whole document without letting another thread in: a reload
   in a worker thread would stall the event loop for as long);
4. the composed node graph is walked once (memoised, so aliases cost nothing
   to count) to bound the expanded size and to reject duplicate keys, naming
   both lines;
5. only then are Python objects constructed.
"""

from __future__ import annotations

import os
import pickle
import stat
import sys
from collections.abc import Callable
from typing import Any, cast

import yaml

from probe_agent.core.defaults import MAX_CONFIG_BYTES
from probe_agent.core.errors import ConfigError

MAX_DEPTH = 64
# Aliases may repeat a node (anchored defaults merged into every probe), but the
# expanded document may not grow past this many nodes beyond its written size.
MAX_ALIAS_EXPANSION = 1_000_000

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


STDIN = "-"


def read_config_bytes(path: str, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
    """The file's bytes; more than max_bytes is an error (nothing past the limit is read).

    Only a regular file (or a link to one, as Kubernetes mounts a ConfigMap): opening a FIFO
    would wait for a writer forever, and a device could be read forever. `-` is standard input
    (`probe-agent validate -c - < probes.yaml`), read to its end or the limit."""
    if path == STDIN:
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ConfigError(
                [f"standard input is over the limit of {max_bytes:,} bytes (raise it with --max-config-bytes)"]
            )
        return data
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError([f"{path} is not a regular file"])
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
            if len(data) > max_bytes:
                file.seek(0, 2)
                size = file.tell()
                raise ConfigError(
                    [f"file is {size:,} bytes, over the limit of {max_bytes:,} (raise it with --max-config-bytes)"]
                )
    except OSError as exc:
        raise ConfigError([f"cannot read config: {exc.strerror or exc}"]) from None
    return data


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            [
                f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); save the file as UTF-8"
            ]
        ) from None


def load_yaml(text: str) -> Any:
    """Parse one YAML document within the bounds above. Raises ConfigError."""
    loader = yaml.SafeLoader("")
    try:
        node = _compose(text, loader)
        if node is None:
            return None
        _check_graph(node)
        document = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([_describe(exc)]) from None
    finally:
        loader.dispose()
    del node
    return _compacted(document)


def _compacted(document: Any) -> Any:
    # The document's objects were made among the node graph's (nodes, marks, events): about six
    # times their size, 40 MB at 10,000 probes, freed by now but kept from the system by the few
    # live objects left in each block of memory. Made again in one go from a pickle, they sit
    # together in fresh blocks and the old ones are given back: what stays is the document's size.
    data = pickle.dumps(document, protocol=pickle.HIGHEST_PROTOCOL)
    del document
    return pickle.loads(data)  # our own bytes, made just above


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"invalid YAML{where}: {problem}"


def _compose(text: str, resolver: yaml.SafeLoader) -> yaml.Node | None:
    """Events -> one document's node graph, iteratively, nesting bounded by MAX_DEPTH."""
    anchors: dict[str, yaml.Node] = {}
    stack: list[yaml.Node] = []  # open collections; a mapping's pending key is kept in `keys`
    keys: list[yaml.Node | None] = []
    root: yaml.Node | None = None
    documents = 0

    def attach(node: yaml.Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent, yaml.SequenceNode):
            parent.value.append(node)
        elif keys[-1] is None:
            keys[-1] = node
        else:
            parent.value.append((keys[-1], node))
            keys[-1] = None

    # The stubs leave the resolver untyped and type C marks apart from Python's.
    resolve = cast(Callable[[type[yaml.Node], Any, Any], str], resolver.resolve)

    for event in yaml.parse(text, Loader=_Loader):
        start = cast(yaml.Mark, event.start_mark)
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag if event.tag not in (None, "!") else resolve(yaml.ScalarNode, event.value, event.implicit)
            node: yaml.Node = yaml.ScalarNode(
                tag, event.value, start, cast(yaml.Mark, event.end_mark), style=event.style
            )
        elif isinstance(event, _OPEN):
            if len(stack) >= MAX_DEPTH:
                raise ConfigError([f"line {start.line + 1}: nested deeper than {MAX_DEPTH} levels"])
            if isinstance(event, yaml.SequenceStartEvent):
                tag = event.tag if event.tag not in (None, "!") else resolve(yaml.SequenceNode, None, event.implicit)
                node = yaml.SequenceNode(tag, [], start, None, flow_style=event.flow_style)
            else:
                tag = event.tag if event.tag not in (None, "!") else resolve(yaml.MappingNode, None, event.implicit)
                node = yaml.MappingNode(tag, [], start, None, flow_style=event.flow_style)
            if event.anchor is not None:
                anchors[event.anchor] = node
            attach(node)
            stack.append(node)
            keys.append(None)
            continue
        elif isinstance(event, _CLOSE):
            stack.pop().end_mark = cast(yaml.Mark, event.end_mark)
            keys.pop()
            continue
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise ConfigError([f"line {start.line + 1}: alias *{event.anchor} names no anchor"])
            attach(anchors[event.anchor])
            continue
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise ConfigError([f"line {start.line + 1}: more than one YAML document in the file"])
            continue
        else:  # stream and document ends
            continue
        if event.anchor is not None:
            anchors[event.anchor] = node
        attach(node)
    return root


def _check_graph(root: yaml.Node) -> None:
    """Expanded size (aliases counted as often as they are used) and duplicate keys, without recursion."""
    written: set[int] = set()
    open_nodes: set[int] = set()  # collections whose children are still being counted
    size: dict[int, int] = {}  # node id -> nodes in its expansion
    depth: dict[int, int] = {}  # node id -> nesting of its expansion (aliases chain written depths)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[key] = depth[key] = 1
            written.add(key)
            continue
        children = _children(node)
        if not children_done:
            if key in open_nodes:
                raise ConfigError(
                    [f"line {node.start_mark.line + 1}: an alias refers to a collection that contains it"]
                )
            if isinstance(node, yaml.MappingNode):
                _check_duplicate_keys(node)
            written.add(key)
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        open_nodes.discard(key)
        total = 1 + sum(size[id(child)] for child in children)
        if total > MAX_ALIAS_EXPANSION + len(written):
            raise ConfigError(
                [
                    f"line {node.start_mark.line + 1}: aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes"
                    " (a billion-laughs file?)"
                ]
            )
        size[key] = total
        # each anchor nests within the limit, but one inside another inside another does not:
        # everything that walks the data afterwards would recurse that deep
        depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
        if depth[key] > MAX_DEPTH:
            raise ConfigError(
                [f"line {node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels once aliases are expanded"]
            )


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


Path = tuple[str | int, ...]


def positions(
    text: str, under: tuple[str, ...] = ("probes", "target_groups", "defaults"), depth: int = 4
) -> dict[Path, tuple[int, int]]:
    """(line, column), 1-based, of every key and list item under the top-level keys `under`, to
    `depth` levels: where to point a problem. Composed again, only when there are problems."""
    loader = yaml.SafeLoader("")
    try:
        root = _compose(text, loader)
    except (yaml.YAMLError, ConfigError):
        return {}
    finally:
        loader.dispose()
    found: dict[Path, tuple[int, int]] = {}
    if not isinstance(root, yaml.MappingNode):
        return found
    stack: list[tuple[yaml.Node, Path]] = []
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value in under:
            found[(key.value,)] = (key.start_mark.line + 1, key.start_mark.column + 1)
            stack.append((value, (key.value,)))
    while stack:
        node, path = stack.pop()
        if len(path) > depth:
            continue
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    found.setdefault((*path, key.value), (key.start_mark.line + 1, key.start_mark.column + 1))
                    stack.append((value, (*path, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found.setdefault((*path, index), (item.start_mark.line + 1, item.start_mark.column + 1))
                stack.append((item, (*path, index)))
    return found


def locate(found: dict[Path, tuple[int, int]], path: Path) -> tuple[int, int] | None:
    """The position of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), 0, -1):
        if path[:end] in found:
            return found[path[:end]]
    return None
