"""Releases: a version promoted from stage to stage of one plan file, through gates.

Owns the ledger of every release event (`ledger`), gate evaluation (`gates`, `clock`) and the
commands' logic (`promotion`); the stages grammar is `cloudorch.planfile.stages`. It applies only
through the operations layer `cloudorch.run`, never through `cloudorch.api` or `cloudorch.cli`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudorch.api import Loaded, RunOptions
    from cloudorch.planfile import PlanSpec


def load_all_stages(plan: PlanSpec, opts: RunOptions) -> Loaded:
    """Every stage's instances at once, addressed `stage.resource`, with the stages in the graph.

    This is what `validate` and `graph` see for a plan with stages and no `--stage`: every stage
    is bound and type-checked, so a `${stage.vars.X}` missing in one stage is found.
    """
    from cloudorch import graph as graphs
    from cloudorch.api import Loaded
    from cloudorch.planfile import check_types, expand
    from cloudorch.planfile.expand import bind_stage, stage_context
    from cloudorch.planfile.stages import stages_of
    from cloudorch.provider.registry import Registry

    stages = stages_of(plan)
    assert stages is not None
    registry = Registry()
    instances = []
    nodes: list[tuple[str, dict[str, object]]] = []
    edges: list[tuple[str, str]] = []
    for name in stages.order:
        stage = stages.by_name[name]
        nodes.append((name, {"kind": "stage", "needs": list(stage.needs), "gates": [g.name for g in stage.gates]}))
        edges += [(need, name) for need in stage.needs]
        bound = bind_stage(plan, stage_context(plan, name, opts.release_version))
        insts = expand(bound)
        check_types(bound, registry, insts)
        by_name: dict[str, list[str]] = {}
        for inst in insts:
            by_name.setdefault(inst.name, []).append(f"{name}.{inst.address}")
        for inst in insts:
            address = f"{name}.{inst.address}"
            instances.append(replace(inst, address=address))
            nodes.append((address, {"type": inst.type, "provider": inst.provider, "kind": "resource", "stage": name}))
            deps = [d for dep in inst.depends_on for d in by_name.get(dep, ())]
            edges += [(d, address) for d in deps] or [(name, address)]
    locations = {i.address: i.location for i in instances}
    g = graphs.build(nodes, edges, locate=locations.get)
    return Loaded(plan, instances, registry, g)
