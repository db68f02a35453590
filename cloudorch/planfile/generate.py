"""Plan file text written from the cloud: resource blocks for import targets that have none yet.

`resource_blocks` turns what `import_` read into a `resources:` section a user merges into the
plan file. Import targets of one name with keys (`buckets[logs]`, `buckets[assets]`) become one
block with `for_each`: values every instance shares are written once, the others come from
`each.value`. It writes text only; the CLI writes the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from cloudorch.planfile.addresses import parse_address
from cloudorch.planfile.expressions import escape

if TYPE_CHECKING:
    from cloudorch.planfile.blocks import ImportTarget
    from cloudorch.provider.contract import Observed

_MISSING = object()


def resource_blocks(found: Sequence[tuple[ImportTarget, Observed]], *, header: str = "") -> str:
    """YAML with a top-level `resources:` holding one block per resource name.

    Targets inside module instances (`module.net[eu].vpc`) get a `resources:` document of their
    own per module instance, after the root's, headed by a comment naming it.
    """
    by_module: dict[str, dict[str, list[tuple[str | None, ImportTarget, Observed]]]] = {}
    for target, seen in found:
        steps = parse_address(target.to).steps
        module = ".".join(str(s) for s in steps[:-1])
        by_module.setdefault(module, {}).setdefault(steps[-1].name, []).append((steps[-1].key, target, seen))
    lines = [f"# {header}"] if header else []
    lines.append("# every property as the cloud reports it; merge these blocks into the plan file's `resources:`")
    for i, (module, groups) in enumerate(sorted(by_module.items())):
        if module:
            lines.append(f"---\n# resources of {module}: they belong in that module's `resources:`")
        elif i:
            lines.append("---")
        lines.append(_dump(groups).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _dump(groups: dict[str, list[tuple[str | None, ImportTarget, Observed]]]) -> str:
    resources: dict[str, Any] = {}
    for name, members in groups.items():
        first = members[0][1]
        block: dict[str, Any] = {"type": first.type}
        if first.provider and first.provider != str(first.type).partition(".")[0]:
            block["provider"] = first.provider
        keyed = [m for m in members if m[0] is not None]
        if not keyed:
            block["properties"] = escape(dict(members[0][2].properties))
        else:
            block.update(_for_each_block([(str(k), seen) for k, _t, seen in keyed]))
        resources[name] = block
    return str(yaml.safe_dump({"resources": resources}, sort_keys=False, default_flow_style=False, allow_unicode=True))


def _for_each_block(members: list[tuple[str, Observed]]) -> dict[str, Any]:
    names = list(dict.fromkeys(k for _key, seen in members for k in seen.properties))
    shared: dict[str, Any] = {}
    varying: list[str] = []
    for prop in names:
        values = [seen.properties.get(prop, _MISSING) for _key, seen in members]
        if any(v is _MISSING for v in values):
            continue  # a property one object does not report is left to its default
        if all(v == values[0] for v in values):
            shared[prop] = values[0]
        else:
            varying.append(prop)
    for_each = {key: escape({p: seen.properties[p] for p in varying}) for key, seen in members}
    properties = {
        p: (escape(shared[p]) if p in shared else "${each.value." + p + "}")
        for p in names
        if p in shared or p in varying
    }
    return {"for_each": for_each, "properties": properties}
