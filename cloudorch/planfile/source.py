"""YAML source of a plan or variable file, with the line and column of every node.

This module owns parsing (a safe loader only: YAML's core-schema tags, nothing else) and the
`SourceMap` from field path tuples to positions that every plan file error uses. It rejects
duplicate keys, which plain PyYAML silently accepts, and enforces the size, nesting and alias
limits of `cloudorch.planfile.limits`. It knows nothing of what a plan file means.
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
from cloudorch.planfile.limits import InputLimits, raise_hint

try:  # libyaml is ~10x faster on 5,000-resource plans; fall back to pure Python
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _BaseLoader = yaml.SafeLoader

FieldPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
#: the tags of YAML's core schema (plus `timestamp`, which the YAML 1.1 resolver gives dates);
#: any other tag, explicit (`!!python/object/apply:...`, `!!binary`, `!custom`) is refused
_SCALAR_TAGS: frozenset[str] = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_IMPLICIT_FIRST: frozenset[str] = (
    frozenset(k for k in _BaseLoader.yaml_implicit_resolvers if k)
    if None not in _BaseLoader.yaml_implicit_resolvers
    else frozenset(chr(c) for c in range(0x110000))  # a wildcard resolver: never take the fast path
)

#: how many distinct plain words `MarkedLoader.resolve` remembers as strings
_MAX_PLAIN_WORDS = 1024


def dotted(path: FieldPath) -> str:
    """`("resources", "web", "properties", "tags", 0)` -> `resources.web.properties.tags.0`."""
    return ".".join(map(str, path))


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

    def __init__(self, stream: str, source_map: SourceMap, limits: InputLimits | None = None) -> None:
        super().__init__(stream)
        self.source_map = source_map
        self.limits = limits or InputLimits()
        # Aliases share one node: a container built a second time is an alias expansion, and
        # everything built inside it counts against `max_alias_nodes` (a "billion laughs" file
        # of a few hundred bytes would otherwise expand to billions of values). A container met
        # again while it is still being built is a recursive alias. An alias is written with a
        # `*`: without one in the text every node is built once, and none needs tracking.
        self._containers: dict[int, bool] = {}  # id(node) -> still being built
        self._may_alias = not isinstance(stream, str) or "*" in stream
        self._in_alias = 0
        self._alias_nodes = 0
        self._plain_words: set[str] = set()
        # Whether a mapping may hold a merge key, so that mappings need a look for one: an
        # implicit `<<` goes through `resolve` (which sets this), an explicit `!!merge` needs
        # a `!` in the text (every tag is written with one).
        self._may_merge = not isinstance(stream, str) or "!" in stream

    def load_marked(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self.source_map.marks[()] = _pos(node)
        return self._build(node, (), 0)

    # The C composer calls these three for every node, so they answer without the general
    # machinery where it cannot change the answer: this loader has no path resolvers.
    yaml_path_resolvers: dict[Any, Any] = {}

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # Most plan values are strings whose first character no implicit resolver (int, bool,
        # null, ...) starts with: answer those fast. Collections get the default tags.
        if kind is ScalarNode:
            if not implicit[0] or (value and value[0] not in _IMPLICIT_FIRST):
                return _STR_TAG
            # Words such as `type` or `name` start like a bool or null: remember those that are
            # strings rather than run the resolvers' patterns on every resource's `type:` again
            # (the answer depends on the value alone; the set is bounded against hostile input).
            if value in self._plain_words:
                return _STR_TAG
            tag = super().resolve(kind, value, implicit)
            if tag == _STR_TAG and len(self._plain_words) < _MAX_PLAIN_WORDS:
                self._plain_words.add(value)
            elif tag == _MERGE_TAG:
                self._may_merge = True
            return tag
        return _MAP_TAG if kind is MappingNode else _SEQ_TAG

    def _build(self, node: Node, path: FieldPath, depth: int) -> Any:
        if self._in_alias:
            self._count_alias(1, node, path)
        if isinstance(node, ScalarNode):
            if node.tag == _STR_TAG:
                return node.value  # what construct_yaml_str does, without the dispatch
            if node.tag not in _SCALAR_TAGS:
                raise self._tag_error(node, path)
            return self.construct_object(node, deep=True)
        node_id = id(node)
        building = self._containers.get(node_id) if self._may_alias else None
        if building:
            raise ConfigError(
                "recursive YAML alias",
                hint="an anchor cannot contain an alias to itself",
                location=self.source_map.location(path),
            )
        if depth >= self.limits.max_depth:
            line, col = _pos(node)
            raise ConfigError(
                f"YAML nested more than {self.limits.max_depth} levels deep",
                hint="flatten the structure; " + raise_hint("max_depth"),
                location=Location(self.source_map.file, line, col, dotted(path) or None),
            )
        aliased = building is not None
        if aliased:
            self._in_alias += 1
            self._count_alias(1, node, path)
        if self._may_alias:
            self._containers[node_id] = True
        try:
            if isinstance(node, MappingNode):
                if node.tag != _MAP_TAG:
                    raise self._tag_error(node, path)
                if self._may_merge:
                    for key_node, _ in node.value:
                        if key_node.tag == _MERGE_TAG:
                            return self._build_merged(node, path, depth)
                return self._build_mapping_entries(node.value, path, depth, check=True)
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    raise self._tag_error(node, path)
                items: list[Any] = []
                marks = self.source_map.marks
                inline = not self._in_alias
                for i, child in enumerate(node.value):
                    sub = (*path, i)
                    mark = child.start_mark
                    marks[sub] = (mark.line + 1, mark.column + 1)
                    if inline and child.tag == _STR_TAG and isinstance(child, ScalarNode):
                        items.append(child.value)  # what `_build` gives a plain string, without the call
                    else:
                        items.append(self._build(child, sub, depth + 1))
                return items
        finally:
            if self._may_alias:
                self._containers[node_id] = False
            if aliased:
                self._in_alias -= 1
        raise self._tag_error(node, path)  # pragma: no cover - no other node kinds

    def _count_alias(self, n: int, node: Node, path: FieldPath) -> None:
        self._alias_nodes += n
        if self._alias_nodes > self.limits.max_alias_nodes:
            line, col = _pos(node)
            raise ConfigError(
                f"YAML aliases expand to more than {self.limits.max_alias_nodes:,} values",
                hint="anchors (`&name`) and aliases (`*name`, `<<: *name`) are for sharing a few "
                "defaults, not for multiplying data; " + raise_hint("max_alias_nodes"),
                location=Location(self.source_map.file, line, col, dotted(path) or None),
            )

    def _tag_error(self, node: Node, path: FieldPath) -> ConfigError:
        line, col = _pos(node)
        tag = str(node.tag)
        shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag
        return ConfigError(
            f"unsupported YAML tag `{shown}`",
            hint="plan and variable files are plain YAML: only the core tags (!!str, !!int, !!float, "
            "!!bool, !!null, !!seq, !!map) are allowed",
            location=Location(self.source_map.file, line, col, dotted(path) or None),
        )

    def _build_merged(self, node: MappingNode, path: FieldPath, depth: int) -> dict[Any, Any]:
        """A mapping with merge keys (`<<: *base`): its own entries are checked for duplicates
        first, then the merged entries go first, so the node's own keys win."""
        own = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        self._build_mapping_entries(own, path, depth, check=True)
        self.flatten_mapping(node)
        # every merged entry is an alias expansion, however deep it came from
        self._count_alias(len(node.value) - len(own), node, path)
        return self._build_mapping_entries(node.value, path, depth, check=False)

    def _build_mapping_entries(
        self, entries: list[tuple[Node, Node]], path: FieldPath, depth: int, *, check: bool
    ) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        marks = self.source_map.marks
        # A plain string value (most values of a plan) is taken here, without a call to
        # `_build`; inside an alias expansion every value goes through `_build` to be counted.
        inline = not self._in_alias
        for key_node, value_node in entries:
            if key_node.tag == _STR_TAG and isinstance(key_node, ScalarNode):
                key = key_node.value
            else:
                key = self._key(key_node, path)
            if check:
                try:
                    duplicate = key in out
                except TypeError:
                    raise ConfigError(
                        "a mapping key must be a plain value",
                        location=self.source_map.location(path),
                        hint="write keys as strings or numbers",
                    ) from None
                if duplicate:
                    raise self._duplicate_error(entries, key_node, key, path)
            sub = (*path, key)
            mark = key_node.start_mark
            marks[sub] = (mark.line + 1, mark.column + 1)
            if inline and value_node.tag == _STR_TAG and isinstance(value_node, ScalarNode):
                out[key] = value_node.value
            else:
                out[key] = self._build(value_node, sub, depth + 1)
        return out

    def _key(self, key_node: Node, path: FieldPath) -> Any:
        """The value of a mapping key other than a plain string, or the error it is."""
        if not isinstance(key_node, ScalarNode):
            raise ConfigError(
                "a mapping key must be a plain value",
                location=Location(self.source_map.file, *_pos(key_node), dotted(path) or None),
                hint="write keys as strings or numbers",
            )
        if key_node.tag == _STR_TAG:
            return key_node.value
        if key_node.tag in _SCALAR_TAGS:
            return self.construct_object(key_node, deep=True)
        raise self._tag_error(key_node, path)

    def _duplicate_error(
        self, entries: list[tuple[Node, Node]], key_node: Node, key: Any, path: FieldPath
    ) -> ConfigError:
        # the first entry with an equal key (as a dict compares keys: `1` and `true` are equal);
        # the entries before `key_node` are all different, so there is exactly one
        first = next(k for k, _ in entries if (found := self._key(k, path)) is key or found == key)
        line, col = _pos(key_node)
        return ConfigError(
            f"duplicate key `{key}` (first written on line {_pos(first)[0]})",
            hint="YAML keeps only one of them; remove or rename the other",
            location=Location(self.source_map.file, line, col, dotted((*path, key))),
        )


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


def parse_yaml(text: str, file: str, limits: InputLimits | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML document; a syntax error or an exceeded limit becomes a located ConfigError.

    `limits` defaults to `InputLimits.from_env()` (the documented defaults, raised by
    environment variables).
    """
    limits = limits or InputLimits.from_env()
    check_size(text, file, limits)
    source_map = SourceMap(file)
    loader = MarkedLoader(text, source_map, limits)
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
        if "maximum nesting depth" in problem:  # libyaml's own bound (1000) is above ours
            raise ConfigError(
                f"YAML nested more than {limits.max_depth} levels deep",
                hint="flatten the structure; " + raise_hint("max_depth"),
                location=Location(file, mark.line + 1, mark.column + 1) if mark else Location(file),
            ) from None
        raise ConfigError(
            f"YAML syntax error: {problem}",
            hint="check indentation and quoting near this line"
            + (f" ({exc.context})" if exc.context and exc.problem else ""),
            location=Location(file, mark.line + 1, mark.column + 1) if mark else Location(file),
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", location=Location(file)) from exc
    except RecursionError:  # pragma: no cover - only the pure-Python parser recurses this deep
        raise ConfigError(
            f"YAML nested more than {limits.max_depth} levels deep",
            hint="flatten the structure; " + raise_hint("max_depth"),
            location=Location(file),
        ) from None
    finally:
        loader.dispose()
    return value, source_map


def read_bounded(path: str, limits: InputLimits) -> str:
    """The UTF-8 text of a plan or variable file, refused unread when over `limits.max_bytes`.

    Raises OSError and UnicodeDecodeError for the caller to word.
    """
    with open(path, "rb") as f:
        data = f.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise ConfigError(
            f"file is larger than the limit of {limits.max_bytes:,} bytes",
            location=Location(path, 1, 1),
            hint="split it, or " + raise_hint("max_bytes"),
        )
    return data.decode("utf-8")


def check_size(text: str, file: str, limits: InputLimits) -> None:
    """Refuse a file larger than `limits.max_bytes` before parsing any of it."""
    size = len(text) if len(text) * 4 <= limits.max_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise ConfigError(
            f"file is {size:,} bytes, larger than the limit of {limits.max_bytes:,} bytes",
            location=Location(file, 1, 1),
            hint="split the plan, or " + raise_hint("max_bytes"),
        )
