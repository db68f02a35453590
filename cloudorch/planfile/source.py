"""YAML source of a plan or variable file, with the line and column of every node.

This module owns parsing (a safe loader only: no Python tags) and the `SourceMap` from field
path tuples to positions that every plan file error uses. It rejects duplicate keys, which
plain PyYAML silently accepts. It knows nothing of what a plan file means.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cloudorch.errors import ConfigError, Location

try:  # libyaml is ~10x faster on 5,000-resource plans; fall back to pure Python
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _BaseLoader = yaml.SafeLoader

FieldPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_IMPLICIT_FIRST: frozenset[str] = (
    frozenset(k for k in _BaseLoader.yaml_implicit_resolvers if k)
    if None not in _BaseLoader.yaml_implicit_resolvers
    else frozenset(chr(c) for c in range(0x110000))  # a wildcard resolver: never take the fast path
)


def dotted(path: FieldPath) -> str:
    """`("resources", "web", "properties", "tags", 0)` -> `resources.web.properties.tags.0`."""
    return ".".join(str(p) for p in path)


@dataclass
class SourceMap:
    """Positions (1-based line, column) of the nodes of one file, by field path."""

    file: str
    marks: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def location(self, path: FieldPath) -> Location:
        """The best known location of `path`: its own, or that of its nearest recorded parent."""
        p = tuple(path)
        while p:
            mark = self.marks.get(p)
            if mark is not None:
                return Location(self.file, mark[0], mark[1], dotted(path) or None)
            p = p[:-1]
        mark = self.marks.get((), (1, 1))
        return Location(self.file, mark[0], mark[1], dotted(path) or None)


class MarkedLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe loader that builds plain values and records where each node was written.

    Mapping entries are recorded at their key (the line a reader looks at), sequence items at
    the item. Merge keys (`<<`) and anchors work; duplicate keys are an error.
    """

    def __init__(self, stream: str, source_map: SourceMap) -> None:
        super().__init__(stream)
        self.source_map = source_map
        self._building: set[int] = set()

    def load_marked(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self.source_map.marks[()] = _pos(node)
        return self._build(node, ())

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # The C composer asks this for every scalar. Most plan values are strings whose first
        # character no implicit resolver (int, bool, null, ...) starts with: answer those fast.
        if kind is ScalarNode and (not implicit[0] or (value and value[0] not in _IMPLICIT_FIRST)):
            return _STR_TAG
        return super().resolve(kind, value, implicit)

    def _build(self, node: Node, path: FieldPath) -> Any:
        if isinstance(node, ScalarNode):
            if node.tag == _STR_TAG:
                return node.value  # what construct_yaml_str does, without the dispatch
            return self.construct_object(node, deep=True)
        if id(node) in self._building:
            raise ConfigError(
                "recursive YAML alias",
                hint="an anchor cannot contain an alias to itself",
                location=self.source_map.location(path),
            )
        self._building.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items: list[Any] = []
                for i, child in enumerate(node.value):
                    sub = (*path, i)
                    self.source_map.marks[sub] = _pos(child)
                    items.append(self._build(child, sub))
                return items
            if isinstance(node, MappingNode):
                return self._build_mapping(node, path)
        finally:
            self._building.discard(id(node))
        return self.construct_object(node, deep=True)  # pragma: no cover - no other node kinds

    def _build_mapping(self, node: MappingNode, path: FieldPath) -> dict[Any, Any]:
        merged = any(k.tag == _MERGE_TAG for k, _ in node.value)
        if merged:
            self._build_mapping_entries([(k, v) for k, v in node.value if k.tag != _MERGE_TAG], path, check=True)
            # merge keys (`<<: *base`) put the merged entries first, so the node's own keys win
            self.flatten_mapping(node)
        return self._build_mapping_entries(node.value, path, check=not merged)

    def _build_mapping_entries(
        self, entries: list[tuple[Node, Node]], path: FieldPath, *, check: bool
    ) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        marks = self.source_map.marks
        for key_node, value_node in entries:
            key = key_node.value if key_node.tag == _STR_TAG else self.construct_object(key_node, deep=True)
            try:
                duplicate = check and key in first_line
            except TypeError:
                raise ConfigError(
                    "a mapping key must be a plain value",
                    location=self.source_map.location(path),
                    hint="write keys as strings or numbers",
                ) from None
            sub = (*path, key)
            line, col = _pos(key_node)
            if duplicate:
                raise ConfigError(
                    f"duplicate key `{key}` (first written on line {first_line[key]})",
                    hint="YAML keeps only one of them; remove or rename the other",
                    location=Location(self.source_map.file, line, col, dotted(sub)),
                )
            first_line[key] = line
            marks[sub] = (line, col)
            out[key] = self._build(value_node, sub)
        return out


def _pos(node: Node) -> tuple[int, int]:
    mark = node.start_mark
    return mark.line + 1, mark.column + 1


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large acyclic tree.

    Loading 5,000 resources allocates a few hundred thousand containers; without this, repeated
    full collections cost more than the parsing itself (measured: 0.6 s -> 0.2 s).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; a syntax error becomes a ConfigError at the YAML mark."""
    source_map = SourceMap(file)
    loader = MarkedLoader(text, source_map)
    try:
        value = loader.load_marked()
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(
            f"unsupported YAML: {exc.problem}",
            hint="plan files are plain YAML: language tags such as `!!python/...` are not allowed",
            location=Location(file, mark.line + 1, mark.column + 1) if mark else Location(file),
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"YAML syntax error: {problem}",
            hint="check indentation and quoting near this line"
            + (f" ({exc.context})" if exc.context and exc.problem else ""),
            location=Location(file, mark.line + 1, mark.column + 1) if mark else Location(file),
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", location=Location(file)) from exc
    finally:
        loader.dispose()
    return value, source_map
