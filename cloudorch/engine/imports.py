"""`imports:`: adopt existing objects into state at plan, and write resource blocks for them.

`plan_imports` reads each import target not yet in state through the type's `import_` (a read,
in parallel) and puts a record for it in the in-memory state, so the diff compares the object
with its resource block (no change, or an update) instead of creating it. Targets without a
resource block are only read, for `generated_config` (`plan --generate-config-out FILE`). The
changeset carries each adopted record (`ChangeSet.imports`), so a saved plan's apply records
exactly those (`replay_imports`). Nothing here writes to a cloud.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloudorch.engine.retry import call_with_retries
from cloudorch.errors import ConfigError, StalePlanError
from cloudorch.planfile.addresses import parse_address
from cloudorch.provider.contract import Observed, sensitive_fields
from cloudorch.state.model import ResourceRecord, State, sensitive_marker

if TYPE_CHECKING:
    from cloudorch.engine.providerset import ProviderSet
    from cloudorch.planfile import Instance, PlanSpec
    from cloudorch.planfile.blocks import ImportTarget


@dataclass
class ImportResult:
    """What the imports of one plan did: records adopted, what was read, objects awaiting a block."""

    adopted: dict[str, ResourceRecord] = field(default_factory=dict)
    #: target address -> the import id as written, for the plan's output
    ids: dict[str, str] = field(default_factory=dict)
    observed: dict[str, Observed] = field(default_factory=dict)
    #: targets with no resource block: (target, what the cloud has), for --generate-config-out
    unconfigured: list[tuple[ImportTarget, Observed]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [
            {"to": a, "id": self.ids[a], "record": rec.model_dump(mode="json")} for a, rec in self.adopted.items()
        ]


def same_id(recorded: str, given: str) -> bool:
    """Whether the id in state and the id an import names are the same object.

    Import ids may carry more than the id a type records (`?api-version=` on an ARM id, a
    `/hostedzone/` prefix, `gs://`)."""
    bare = given.split("?", 1)[0].removeprefix("gs://").rstrip("/")
    return recorded in (given, bare) or bare.endswith("/" + recorded) or recorded.endswith("/" + bare)


def plan_imports(
    plan: PlanSpec,
    instances: Mapping[str, Instance],
    state: State,
    providers: ProviderSet,
    *,
    parallelism: int,
    generate: bool = False,
) -> ImportResult:
    """Read every import target not in state yet and adopt those the plan has a block for."""
    result = ImportResult()
    todo: list[tuple[ImportTarget, Instance | None, str, str]] = []
    for t in plan.imports:
        rec = state.resources.get(t.to)
        if rec is not None:
            if not same_id(rec.id, t.id):
                raise ConfigError(
                    f"cannot import {t.id} to {t.to}: state already has {rec.id} there",
                    location=t.location,
                    hint="import to another address, or `cloudorch state rm` the one in state first",
                )
            continue  # imported by an earlier apply: nothing to do
        inst = instances.get(t.to)
        steps = parse_address(t.to).steps
        name = steps[-1].name
        if inst is None and len(steps) == 1 and name in plan.resources:
            keys = sorted(a for a in instances if a == name or a.startswith(name + "["))
            raise ConfigError(
                f"cannot import to {t.to}: it is not an instance of resource `{name}` (instances: {', '.join(keys)})",
                location=t.location,
                hint="add the key to the resource's for_each, or import to one of its instances",
            )
        if inst is None and not generate:
            raise ConfigError(
                f"cannot import to {t.to}: the plan has no resource block for it",
                location=t.location,
                hint="write one, or let `cloudorch plan PLAN --generate-config-out FILE` write it from the cloud",
            )
        rtype = inst.type if inst is not None else t.type
        assert rtype is not None  # blocks.load_imports requires a type when there is no block
        provider = t.provider or (inst.provider if inst is not None else rtype.partition(".")[0])
        todo.append((t, inst, rtype, provider))
    if not todo:
        return result

    def read(job: tuple[ImportTarget, Instance | None, str, str]) -> Observed:
        t, _inst, rtype, provider = job
        rt = providers.resource_type(provider, rtype)
        return call_with_retries(rt.provider, t.to, lambda: rt.import_(t.to, t.id))

    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(todo), 32))) as pool:
        seen = list(pool.map(read, todo))
    for (t, inst, rtype, provider), obs in zip(todo, seen, strict=True):
        if inst is None:
            result.unconfigured.append((t, obs))
            continue
        result.adopted[t.to] = record_of(t.to, rtype, provider, obs, providers)
        result.ids[t.to] = t.id
        result.observed[t.to] = obs
    state.resources.update(result.adopted)
    return result


def record_of(address: str, rtype: str, provider: str, obs: Observed, providers: ProviderSet) -> ResourceRecord:
    """The state record of an adopted object; sensitive properties stored as hashes, as state keeps them."""
    sens = sensitive_fields(providers.resource_type(provider, rtype).Properties)
    props = {k: sensitive_marker(v) if k in sens and v is not None else v for k, v in obs.properties.items()}
    return ResourceRecord(
        address=address,
        type=rtype,
        provider=provider,
        id=obs.id,
        properties=props,
        attributes=dict(obs.attributes),
        dependencies=[],
        sensitive=sorted(k for k in sens if k in props),
    )


def replay_imports(state: State, imports: Sequence[Mapping[str, Any]]) -> None:
    """A saved plan's imports, recorded in `state` as they were read at plan."""
    for item in imports:
        address = str(item["to"])
        if address in state.resources:
            raise StalePlanError(f"the saved plan imports {address}, which is now in state", hint="plan again")
        state.resources[address] = ResourceRecord.model_validate(item["record"])
