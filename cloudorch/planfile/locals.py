"""`locals:`: named values computed once and read as `${local.NAME}`.

This module owns the order of locals (a cycle is a located error naming it), their values, and
what a `${local.NAME}` reference becomes: a local that reads only variables, env vars and other
such locals is evaluated once at load (`PlanSpec.local_values`); one that reads resources stays
a template (`PlanSpec.local_templates`) that is written into whatever references it, so each
resource depends on exactly the resources its locals read and values unknown at plan stay unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cloudorch.errors import ConfigError, did_you_mean
from cloudorch.planfile.expressions import (
    ExpressionError,
    Inline,
    Reference,
    find_refs,
    navigate,
    resolve,
    resolve_partial,
)
from cloudorch.planfile.source import SourceMap

#: roots whose values are known when the plan is loaded
_STATIC_ROOTS = frozenset({"var", "env"})
_PARTIAL_ROOTS = frozenset({"var", "env", "local"})


class Locals:
    """The locals of one plan: `values` of those known at load, `templates` of the others."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.templates: dict[str, Any] = {}
        #: locals whose value comes from a sensitive variable (directly or through another local)
        self.sensitive: set[str] = set()

    def lookup(self, ref: Reference) -> Any:
        """A `local` reference's value, or an `Inline` template when the local reads resources."""
        name = str(ref.path[0])
        if name in self.values:
            return navigate(self.values[name], ref.path[1:], ref.text)
        return _inline_at(self.templates[name], ref.path[1:], ref.text)

    def is_static(self, name: str) -> bool:
        return name in self.values


def _inline_at(template: Any, path: tuple[str | int, ...], text: str) -> Inline:
    """The part of a template at `path`: walk maps and lists, then select in CEL from there."""
    value = template
    for i, step in enumerate(path):
        if isinstance(value, dict) and (step in value or str(step) in value):
            value = value[step] if step in value else value[str(step)]
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        elif isinstance(value, str) and "${" in value:
            rest = "".join(f"[{s}]" if isinstance(s, int) else f"[{_quoted(s)}]" for s in path[i:])
            return Inline("${(" + Inline(value).cel + ")" + rest + "}")
        else:
            raise ExpressionError(f"`{text}`: no key {step!r}", text)
    return Inline(value)


def _quoted(s: str) -> str:
    import json

    return json.dumps(s)


def local_order(raw: Mapping[str, Any], source_map: SourceMap, base: tuple[str, ...] = ("locals",)) -> list[str]:
    """The locals in an order where each comes after those it reads; a cycle is a located error."""
    deps: dict[str, list[str]] = {}
    for name, value in raw.items():
        wanted: list[str] = []
        for ref in find_refs(value):
            if ref.root != "local" or not ref.path:
                continue
            head = str(ref.path[0])
            if head not in raw:
                raise ConfigError(
                    f"`{ref.text}` refers to local `{head}`, which is not declared",
                    location=source_map.location((*base, name)),
                    hint=did_you_mean(head, list(raw)) or f"declare it under `locals:`, e.g. `{head}: ...`",
                )
            wanted.append(head)
        deps[name] = list(dict.fromkeys(wanted))
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        mark = state.get(name)
        if mark == 2:
            return
        if mark == 1:
            cycle = [*path[path.index(name) :], name]
            raise ConfigError(
                "locals refer to each other in a cycle: " + " -> ".join(f"`{c}`" for c in cycle),
                location=source_map.location((*base, cycle[0])),
                hint="a local may read other locals, but not itself through them: break the cycle",
            )
        state[name] = 1
        for dep in deps[name]:
            visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in raw:
        visit(name, [])
    return order


def compute_locals(
    raw: Mapping[str, Any],
    source_map: SourceMap,
    var_env_lookup: Callable[[Reference], Any],
    sensitive_vars: frozenset[str],
) -> Locals:
    """Evaluate what can be evaluated at load, in dependency order (references already checked)."""
    out = Locals()
    for name in local_order(raw, source_map):
        value = raw[name]
        refs = find_refs(value)
        if any(
            (r.root == "var" and r.path and str(r.path[0]) in sensitive_vars)
            or (r.root == "local" and r.path and str(r.path[0]) in out.sensitive)
            for r in refs
        ):
            out.sensitive.add(name)

        def lookup(ref: Reference) -> Any:
            return out.lookup(ref) if ref.root == "local" else var_env_lookup(ref)

        static = all(
            r.root in _STATIC_ROOTS or (r.root == "local" and out.is_static(str(r.path[0]))) for r in refs
        ) and not any(r.dynamic for r in refs)
        try:
            if static:
                out.values[name] = resolve(value, lookup)
            else:
                out.templates[name] = resolve_partial(value, lookup, _PARTIAL_ROOTS)
        except ConfigError:
            raise
        except ExpressionError as exc:
            raise ConfigError(
                f"local `{name}`: {exc}",
                location=source_map.location(("locals", name)),
                hint="check the values it reads",
            ) from None
    return out
