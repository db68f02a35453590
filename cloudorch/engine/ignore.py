"""`lifecycle.ignore_changes`: property paths the planner and drift leave as the cloud has them.

Owns the path syntax (`tags.owner`, `rules[0]`, `tags["a.b"]`) and the two uses of it: keeping
ignored values out of an update (`keep_ignored`, the planner) and out of a comparison
(`without_paths`, drift). Pure functions over property dicts: no provider, state store or cloud.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from copy import deepcopy
from typing import Any

from cloudorch.state.model import is_sensitive_marker

_TOKEN = re.compile(r"""\.?([^.\[\]]+)|\[(\d+)\]|\[["']([^"']*)["']\]""")


def path_steps(path: str) -> list[str | int]:
    """`tags.owner` -> ["tags", "owner"]; `rules[0]` -> ["rules", 0]; `tags["a.b"]` -> ["tags", "a.b"]."""
    steps: list[str | int] = []
    for m in _TOKEN.finditer(path):
        name, index, quoted = m.groups()
        steps.append(int(index) if index is not None else (quoted if quoted is not None else name))
    return steps


def _get(value: Any, steps: Sequence[str | int]) -> tuple[bool, Any]:
    for s in steps:
        try:
            value = value[s]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, value


def _set(value: Any, steps: Sequence[str | int], present: bool, new: Any) -> None:
    """Set (or remove, when not `present`) the value at `steps` inside `value`, in place."""
    ok, parent = _get(value, steps[:-1])
    if not ok or not isinstance(parent, dict | list):
        return
    last = steps[-1]
    if isinstance(parent, dict):
        if present:
            parent[last] = new
        else:
            parent.pop(last, None)
    elif isinstance(last, int) and 0 <= last < len(parent) and present:
        parent[last] = new


def without_paths(key: str, value: Any, paths: Sequence[str]) -> Any:
    """`value` of property `key` with the nested ignored paths under it removed (for comparing)."""
    nested = [path_steps(p)[1:] for p in paths if path_steps(p)[:1] == [key] and len(path_steps(p)) > 1]
    if not nested or not isinstance(value, dict | list):
        return value
    out = deepcopy(value)
    for steps in nested:
        _set(out, steps, False, None)
    return out


def keep_ignored(
    desired: dict[str, Any], paths: Sequence[str], seen: Mapping[str, Any], recorded: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """Desired properties with every ignored path taken from the cloud (else from state).

    What Terraform does with `ignore_changes`: an update never writes an ignored value back.
    Returns the new properties and the top-level keys that were replaced. Sensitive values,
    which state holds only as hashes, are left as the plan has them.
    """
    out = dict(desired)
    replaced: set[str] = set()
    for path in paths:
        steps = path_steps(path)
        if not steps or not isinstance(steps[0], str):
            continue
        head = steps[0]
        source = seen if head in seen else recorded
        if head not in source or is_sensitive_marker(source[head]):
            continue
        if len(steps) == 1:
            out[head] = deepcopy(source[head])
        else:
            if not isinstance(out.get(head), dict | list):
                continue
            present, value = _get(source[head], steps[1:])
            out[head] = deepcopy(out[head])
            _set(out[head], steps[1:], present, deepcopy(value))
        replaced.add(head)
    return out, replaced
