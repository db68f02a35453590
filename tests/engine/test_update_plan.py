"""The update-plan contract: every resource type says what an in-place update recomputes.

The planner keeps every other attribute known across an update (an id, an ARN, a name), so a
type that forgot to declare would silently fall back to "everything unknown" and replace or
update its dependents for nothing: this test walks the registry and fails on such a type.
"""

from __future__ import annotations

from typing import Any

import pytest

from cloudorch.planfile import Unknown
from cloudorch.provider.contract import (
    RECOMPUTED,
    UNDECLARED,
    Observed,
    ProviderContext,
    ResourceType,
    declares_update_plan,
)
from cloudorch.provider.core import FileResource, NullResource
from cloudorch.provider.registry import Registry


def _all_types() -> list[type[ResourceType[Any]]]:
    registry = Registry()
    out: list[type[ResourceType[Any]]] = []
    for name in registry.names():
        out.extend(registry.provider_class(name).resource_types)
    return out


def test_every_installed_provider_is_walked() -> None:
    names = {t.type_name.partition(".")[0] for t in _all_types()}
    assert {"core", "aws", "azure", "gcp"} <= names


@pytest.mark.parametrize("cls", _all_types(), ids=lambda c: c.type_name)
def test_every_type_declares_what_an_update_recomputes(cls: type[ResourceType[Any]]) -> None:
    assert declares_update_plan(cls), (
        f"{cls.type_name} ({cls.__module__}.{cls.__qualname__}) must set `recomputed_on_update` in its "
        "own class body (frozenset() when an update recomputes nothing)"
    )
    assert isinstance(cls.recomputed_on_update, frozenset)
    unknown = cls.recomputed_on_update - set(cls.attributes)
    assert not unknown, f"{cls.type_name} declares recomputed attributes it does not have: {sorted(unknown)}"


def test_an_inherited_declaration_does_not_count() -> None:
    class Forgetful(NullResource):
        type_name = "test.forgetful"

    class Undeclared(ResourceType[Any]):
        type_name = "test.undeclared"

    assert not declares_update_plan(Forgetful)
    assert not declares_update_plan(Undeclared)
    assert Undeclared.recomputed_on_update is UNDECLARED


def _instance(type_name: str) -> ResourceType[Any]:
    registry = Registry()
    provider_cls = registry.provider_class(type_name.partition(".")[0])
    cls = provider_cls.type_class(type_name)
    assert cls is not None
    # plan_update needs no client: build the type without configuring the provider
    return cls.__new__(cls)


def test_default_keeps_identifiers_and_recomputes_only_what_is_declared() -> None:
    lam = _instance("aws.lambda_function")
    prior = Observed(
        "fn",
        {"name": "fn", "memory_size": 128, "source": "src"},
        {"arn": "arn:aws:lambda:us-east-1:1:function:fn", "name": "fn", "code_sha256": "abc", "version": "$LATEST"},
    )
    got = lam.plan_update(prior, {"name": "fn", "memory_size": 256, "source": "src"})
    assert got["arn"] == prior.attributes["arn"]
    assert got["name"] == "fn"
    assert got["code_sha256"] is RECOMPUTED
    assert got["version"] is RECOMPUTED

    obj = _instance("aws.s3_object")
    prior = Observed(
        "b/k",
        {"bucket": "b", "key": "k", "content": "one"},
        {"etag": "e1", "version_id": "v1", "arn": "arn:aws:s3:::b/k", "url": "s3://b/k"},
    )
    got = obj.plan_update(prior, {"bucket": "b", "key": "k", "content": "two"})
    assert got["etag"] is RECOMPUTED and got["version_id"] is RECOMPUTED
    assert got["arn"] == "arn:aws:s3:::b/k" and got["url"] == "s3://b/k"

    policy = _instance("aws.iam_policy")
    got = policy.plan_update(Observed("arn:p", {"name": "p"}, {"arn": "arn:p", "name": "p", "version": "v1"}), {})
    assert got == {"arn": "arn:p", "name": "p", "version": RECOMPUTED}


def test_an_attribute_named_like_a_changed_property_is_recomputed() -> None:
    bucket = _instance("gcp.storage_bucket")
    prior = Observed(
        "b", {"name": "b", "storage_class": "STANDARD"}, {"id": "b", "name": "b", "storage_class": "STANDARD"}
    )
    got = bucket.plan_update(prior, {"name": "b", "storage_class": "NEARLINE"})
    assert got["storage_class"] is RECOMPUTED
    assert got["name"] == "b" and got["id"] == "b"
    same = bucket.plan_update(prior, {"name": "b", "storage_class": "STANDARD"})
    assert same["storage_class"] == "STANDARD"


def test_an_undeclared_type_keeps_the_old_caution() -> None:
    class Undeclared(NullResource):
        type_name = "test.undeclared"
        recomputed_on_update = UNDECLARED

        def plan_update(self, prior: Observed, desired: Any) -> dict[str, Any]:
            return ResourceType.plan_update(self, prior, desired)

    got = Undeclared.__new__(Undeclared).plan_update(Observed("i", {}, {"id": "i", "x": 1}), {})
    assert got == {"id": RECOMPUTED, "x": RECOMPUTED}


def test_core_null_predicts_its_values_and_keeps_its_id() -> None:
    null = NullResource.__new__(NullResource)
    prior = Observed("id1", {"values": {"a": 1}}, {"a": 1, "id": "id1", "values": {"a": 1}})
    assert null.plan_update(prior, {"values": {"a": 2, "b": 3}}) == {
        "a": 2,
        "b": 3,
        "id": "id1",
        "values": {"a": 2, "b": 3},
    }
    # a value that is itself unknown stays unknown, the id does not
    pending = Unknown("${resources.x.id}")
    got = null.plan_update(prior, {"values": {"a": pending}})
    assert got["a"] == pending and got["id"] == "id1"
    # at create the id is the cloud's, even when `values` has an `id` key
    assert null.plan_create({"values": {"id": "mine", "b": 1}}) == {"b": 1, "values": {"id": "mine", "b": 1}}


def test_core_file_predicts_hash_and_size_from_content(tmp_path: Any) -> None:
    import hashlib

    f = FileResource(_core_provider(tmp_path))
    prior = Observed("/p/f", {"path": "f", "content": "a"}, {"id": "/p/f", "sha256": "x", "size": 1})
    got = f.plan_update(prior, {"path": "f", "content": "héllo"})
    assert got == {"id": "/p/f", "sha256": hashlib.sha256("héllo".encode()).hexdigest(), "size": 6}
    got = f.plan_update(prior, {"path": "f", "content": Unknown("${resources.x.id}")})
    assert got["id"] == "/p/f" and got["sha256"] is RECOMPUTED and got["size"] is RECOMPUTED
    # and the prediction is what the file really has after the update
    real = FileResource(_core_provider(tmp_path))
    props = FileResource.Properties(path="f.txt", content="héllo\n")
    seen = real.update("f", "", props, props)
    predicted = real.plan_update(seen, props.model_dump())
    assert {k: predicted[k] for k in ("id", "sha256", "size")} == {
        k: seen.attributes[k] for k in ("id", "sha256", "size")
    }


def _core_provider(plan_dir: Any) -> Any:
    from cloudorch.provider.core import CoreConfig, CoreProvider

    return CoreProvider(CoreConfig(), "core", ProviderContext(plan_dir=plan_dir))
