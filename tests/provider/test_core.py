"""The `core` provider, loaded the way every provider is: through the registry's entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cloudorch.provider.contract import ErrorKind, ProviderContext, ProviderError, ReadRequest, ResourceType
from cloudorch.provider.registry import Registry


def core_type(type_name: str, plan_dir: Path) -> ResourceType[Any]:
    cls = Registry().provider_class("core")
    provider = cls(cls.Config.model_validate({}), "core", ProviderContext(plan_dir=plan_dir))
    return provider.resource_type(type_name)


def test_core_lists_its_three_types() -> None:
    assert Registry().type_names("core") == ["core.file", "core.null", "core.wait"]


def test_file_lifecycle_relative_to_the_plan(tmp_path: Path) -> None:
    rt = core_type("core.file", tmp_path / "plan")
    props = rt.Properties.model_validate({"path": "out/a.txt", "content": "one", "mode": "0640"})
    made = rt.create("a", props)
    target = tmp_path / "plan" / "out" / "a.txt"
    assert target.read_text() == "one"
    assert os.stat(target).st_mode & 0o777 == 0o640
    # the path is reported as written, so a relative path does not diff against an absolute one
    assert made.properties == {"path": "out/a.txt", "content": "one", "mode": "0640"}
    assert made.id == str(target.resolve()) and made.attributes["size"] == 3

    changed = rt.Properties.model_validate({"path": "out/a.txt", "content": "two"})
    rt.update("a", made.id, props, changed)
    seen = rt.read("a", made.id, changed)
    assert seen is not None and seen.properties["content"] == "two"

    rt.delete("a", made.id, changed)
    assert not target.exists()
    assert rt.read("a", made.id, changed) is None
    rt.delete("a", made.id, changed)  # deleting what is gone is not an error


def test_file_import_records_the_path_relative_to_the_plan(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    rt = core_type("core.file", tmp_path)
    seen = rt.import_("x", "x.txt")
    assert seen.properties["path"] == "x.txt" and seen.properties["content"] == "hi"
    with pytest.raises(ProviderError, match=r"no file at missing\.txt"):
        rt.import_("x", "missing.txt")


def test_null_exposes_values_and_fails_on_request(tmp_path: Path) -> None:
    rt = core_type("core.null", tmp_path)
    made = rt.create("n", rt.Properties.model_validate({"values": {"colour": "blue"}}))
    assert made.attributes["colour"] == "blue" and made.attributes["id"] == made.id
    with pytest.raises(ProviderError, match="create of n failed") as info:
        rt.create("n", rt.Properties.model_validate({"fail_on_create": True}))
    assert info.value.kind is ErrorKind.FATAL


def test_wait_reads_many_without_sleeping(tmp_path: Path) -> None:
    rt = core_type("core.wait", tmp_path)
    props = rt.Properties.model_validate({"seconds": 30})
    seen = rt.read_many([ReadRequest("w1", "id1", props), ReadRequest("w2", "id2", props)])
    assert [s.id for s in seen if s is not None] == ["id1", "id2"]
    assert rt.estimate_seconds(props) == 30


def test_null_reads_back_exactly_its_record(tmp_path: Path) -> None:
    # refresh takes a state-only type's record as it is, without calling `read`: that is right
    # only while `read` of what was recorded gives back the record itself, after any change
    rt = core_type("core.null", tmp_path)
    assert rt.state_only
    first = rt.Properties.model_validate({"values": {"k": "v", "n": [1, {"x": None}]}, "triggers": {"t": "1"}})
    made = rt.create("a", first)
    second = rt.Properties.model_validate({"values": {"k": "w"}, "triggers": {"t": "1"}})
    for props, seen in ((first, made), (second, rt.update("a", made.id, first, second))):
        recorded = props.model_dump(mode="json")  # what state keeps of the properties
        back = rt.read("a", seen.id, rt.Properties.model_construct(**recorded))
        assert back is not None
        assert (back.id, back.properties, back.attributes) == (seen.id, recorded, seen.attributes)
        many = rt.read_many([ReadRequest("a", seen.id, rt.Properties.model_construct(**recorded))])
        assert many == [back]


def test_no_other_core_type_claims_to_live_only_in_state(tmp_path: Path) -> None:
    # core.file reads the file on disk and core.wait is checked by read_many: both must be read
    assert [n for n in Registry().type_names("core") if core_type(n, tmp_path).state_only] == ["core.null"]
