"""Data sources: read the plan's `data:` entries through each type's `lookup`, at every plan.

`read_data` returns each entry's value (its properties and attributes, `id` included; None for an
optional entry that matched nothing) and `substitute` puts those values into a plan's resource
instances and outputs, so the planner and the applier never see a `${data...}` reference. It
never writes state and calls nothing but `lookup`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cloudorch.engine.retry import call_with_retries
from cloudorch.errors import CloudorchError, ConfigError, did_you_mean
from cloudorch.planfile.expressions import ExpressionError, Reference, navigate, resolve_partial, strings_in
from cloudorch.provider.contract import LookupQuery, Observed

if TYPE_CHECKING:
    from cloudorch.engine.providerset import ProviderSet
    from cloudorch.planfile import Instance, PlanSpec
    from cloudorch.planfile.blocks import DataSource

_DATA = frozenset({"data"})


def value_of(seen: Observed) -> dict[str, Any]:
    """What `${data.NAME}` holds: properties, then attributes, and `id`."""
    return {**seen.properties, **seen.attributes, "id": seen.attributes.get("id", seen.id)}


def read_one(source: DataSource, providers: ProviderSet) -> dict[str, Any] | None:
    """Look one data source up; a located error when it matches nothing (unless optional) or several."""
    address = f"data.{source.name}"
    provider = providers.get(source.provider)
    if provider.type_class(source.type) is None:
        known = [t.type_name for t in provider.resource_types]
        raise ConfigError(
            f"data source `{source.name}`: provider {provider.name} has no resource type {source.type}",
            location=source.location,
            hint=did_you_mean(source.type, known) or "its types: " + ", ".join(known),
        )
    rt = provider.resource_type(source.type)
    if not rt.can_lookup:
        raise ConfigError(
            f"data source `{source.name}`: resource type {source.type} does not support lookup",
            location=source.location,
            hint="data sources can read types whose provider implements `lookup` (see docs/providers.md)",
        )
    _check_filter(source, rt.Properties.model_fields, rt.attributes)
    query = LookupQuery(id=source.id, filter=dict(source.filter))
    try:
        found = call_with_retries(rt.provider, address, lambda: rt.lookup(address, query))
    except CloudorchError as exc:
        if exc.location is None:
            exc.location = source.location  # the cloud refused the read: say which entry asked
        raise
    if not found:
        if source.optional:
            return None
        asked = f"id {source.id}" if source.id is not None else f"filter {source.filter}"
        raise ConfigError(
            f"data source `{source.name}`: no {source.type} matches {asked}",
            location=source.location,
            hint="check the id or filter (and the provider's region or project), or add `optional: true` "
            "to read null when it does not exist",
        )
    if len(found) > 1:
        ids = ", ".join(sorted(o.id for o in found))
        raise ConfigError(
            f"data source `{source.name}`: {len(found)} objects of type {source.type} match: {ids}",
            location=source.location,
            hint="narrow the filter (e.g. more tags), or name one with `id:`",
        )
    return value_of(found[0])


def _check_filter(source: DataSource, fields: Mapping[str, Any], attributes: Mapping[str, str]) -> None:
    known = {*fields, *attributes, "id"}
    for key in source.filter:
        if key not in known:
            raise ConfigError(
                f"data source `{source.name}`: {source.type} has no property or attribute `{key}` to filter on",
                location=source.location,
                hint=did_you_mean(key, sorted(known)) or "filter keys: " + ", ".join(sorted(known)),
            )


def read_data(
    plan: PlanSpec, providers: ProviderSet, *, parallelism: int
) -> Callable[[], dict[str, dict[str, Any] | None]]:
    """Start reading every data source on a pool of its own; the returned call waits for the values.

    Started before refresh, so both run at once; the first error (in file order) is raised by the
    call, after every read has finished.
    """
    sources = list(plan.data.values())
    if not sources:
        return dict
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(sources))), thread_name_prefix="cloudorch-data")
    futures: list[tuple[str, Future[dict[str, Any] | None]]] = [
        (s.name, pool.submit(read_one, s, providers)) for s in sources
    ]
    pool.shutdown(wait=False)

    def wait() -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {}
        first: BaseException | None = None
        for name, fut in futures:
            try:
                out[name] = fut.result()
            except CloudorchError as exc:
                first = first or exc
        if first is not None:
            raise first
        return out

    return wait


def substitute(
    plan: PlanSpec, instances: Sequence[Instance], values: Mapping[str, dict[str, Any] | None]
) -> tuple[PlanSpec, list[Instance]]:
    """The plan's outputs and instances with every `${data...}` replaced by its value read now."""
    if not plan.data:
        return plan, list(instances)

    def lookup(ref: Reference) -> Any:
        name = str(ref.path[0])
        value = values.get(name)
        if value is None:
            return None  # an optional data source that matched nothing: it and its attributes are null
        try:
            return navigate(value, ref.path[1:], ref.text)
        except ExpressionError as exc:
            src = plan.data[name]
            raise ConfigError(
                f"{exc}: data source `{name}` ({src.type}) has no such attribute",
                location=src.location,
                hint="attributes: " + ", ".join(sorted(value)),
            ) from None

    out = [
        replace(i, properties=resolve_partial(i.properties, lookup, _DATA), literal=False)
        # a plain `${data.x.id}`, or a CEL expression that reads one among other things
        if any("${" in s and "data" in s for s in strings_in(i.properties))
        else i
        for i in instances
    ]
    outputs = {
        k: o.model_copy(update={"value": resolve_partial(o.value, lookup, _DATA)}) for k, o in plan.outputs.items()
    }
    return replace(plan, outputs=outputs), out
