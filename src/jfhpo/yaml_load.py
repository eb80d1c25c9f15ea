"""A defensive YAML reader for study files.

``yaml.safe_load`` is safe against code execution but not against misuse: a 1 KB file of nested
anchors ("billion laughs") expands into gigabytes once anything walks it, a key written twice
silently keeps the last value, a binary file or a huge file is read whole, and error messages
quote whatever they were given. This module reads a study file with:

* a size limit (``MAX_BYTES``) and a check that the file is UTF-8 text without NUL bytes;
* duplicate mapping keys refused, naming the key and both lines;
* aliases limited in number (``MAX_ALIASES``) and in what they expand to (``MAX_NODES`` values
  once every alias is written out), recursive anchors refused;
* nesting limited to ``MAX_DEPTH`` levels;
* error texts cut to a short excerpt (``excerpt``).

Every refusal is a ``YamlInputError`` (a ``ValueError``); ``spec.load_spec`` turns it into a
study-file error (exit code 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1 << 20  # 1 MiB: a study file is a few kilobytes
MAX_ALIASES = 100
MAX_NODES = 20_000
MAX_DEPTH = 40
EXCERPT = 200


class YamlInputError(ValueError):
    """The file cannot be accepted as a study file's YAML; the message says why."""


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, so no error message grows with its
    input. Containers are summarised before ``repr`` can walk a huge structure."""
    if isinstance(value, (dict, list, tuple, set)) and _too_big(value, limit):
        kind = type(value).__name__
        return f"<{kind} of {len(value)} item(s)>"
    text = repr(value)
    if len(text) > limit:
        tail = f"... ({len(text)} chars)"
        return text[: max(limit - len(tail), 0)] + tail
    return text


def _too_big(value: Any, limit: int, _budget: list[int] | None = None) -> bool:
    """True when ``value`` holds more than ``limit`` leaves or nests deeper than MAX_DEPTH."""
    budget = _budget if _budget is not None else [limit]
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            return True
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, (list, tuple, set)):
            stack.extend((x, depth + 1) for x in v)
    return False


def _cut(text: str, limit: int = 1000) -> str:
    lines = [ln if len(ln) <= EXCERPT else ln[: EXCERPT - 5] + " ..." for ln in text.splitlines()]
    out = "\n".join(lines)
    return out if len(out) <= limit else out[:limit] + " ..."


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases, refuses duplicate keys, and checks the composed graph."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise YamlInputError(
                    f"more than {MAX_ALIASES} YAML aliases (*name) at line "
                    f"{event.start_mark.line + 1}; write the values out instead"
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise YamlInputError(
                            f"key {excerpt(key)} is written twice in one mapping (lines "
                            f"{seen[key]} and {key_node.start_mark.line + 1}); keep one"
                        )
                    seen[key] = key_node.start_mark.line + 1
                except TypeError:
                    pass  # unhashable: the base class reports it
        return super().construct_mapping(node, deep=deep)


def _check_graph(root: Node) -> None:
    """Refuse a node graph that expands to more than MAX_NODES values, nests deeper than
    MAX_DEPTH, or refers to itself. Shared (aliased) nodes are sized once and reused."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YamlInputError(f"the YAML nests deeper than {MAX_DEPTH} levels "
                                 f"(line {node.start_mark.line + 1})")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlInputError(f"a YAML anchor refers to itself (line {node.start_mark.line + 1})")
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    break
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
                if total > MAX_NODES:
                    break
        active.discard(key)
        if total > MAX_NODES:
            raise YamlInputError(
                f"the YAML expands to more than {MAX_NODES} values (anchors and aliases written "
                f"out); a study file needs far fewer - check the anchors near line "
                f"{node.start_mark.line + 1}"
            )
        sizes[key] = total
        return total

    size(root, 0)


def loads(text: str) -> Any:
    """Parse one YAML document under the limits above; raise YamlInputError or yaml.YAMLError."""
    if "\x00" in text:
        raise YamlInputError("the file holds NUL bytes: it is not a YAML text file")
    try:
        loader = _GuardedLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise YamlInputError(f"not valid YAML: {_cut(str(exc))}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except RecursionError:
        raise YamlInputError(f"the YAML nests too deeply (more than {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        raise YamlInputError(f"not valid YAML: {_cut(str(exc))}") from None
    finally:
        loader.dispose()


def load_file(path: str | Path) -> Any:
    """Read and parse a study file; refuses files over MAX_BYTES, binary and non-UTF-8 files."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise YamlInputError("it is a folder, not a study file") from None
    except OSError as exc:
        raise YamlInputError(f"cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise YamlInputError(f"larger than {MAX_BYTES // 1024} KiB; a study file is a few KB")
    if b"\x00" in raw:
        raise YamlInputError("a binary file (it holds NUL bytes), not a YAML study file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlInputError(
            f"not UTF-8 text (byte {exc.start}); save the study file as UTF-8") from None
    return loads(text)
