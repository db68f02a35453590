"""Tests of `load_plan` on good plans: what a PlanSpec holds after loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import PlanSpec, load_plan

from .conftest import GOOD

ENV = {"HOME_DIR": "/home/ann"}


@pytest.fixture
def shop() -> PlanSpec:
    return load_plan(GOOD / "shop.yaml", env=ENV)


def test_top_level_fields(shop: PlanSpec) -> None:
    assert shop.version == 1
    assert shop.name == "shop"
    assert shop.path == GOOD / "shop.yaml"
    assert shop.text == (GOOD / "shop.yaml").read_text()
    assert list(shop.resources) == ["site", "logs", "workers", "build_info"]
    assert shop.variables["token"].sensitive
    assert shop.variables["regions"].type == "list"


def test_providers_and_backend_are_resolved(shop: PlanSpec) -> None:
    assert shop.providers == {"core": {"max_concurrency": 2}, "core.slow": {"max_concurrency": 1}}
    assert shop.backend == {"url": "file:///home/ann/state"}
    assert shop.env_values == {"HOME_DIR": "/home/ann"}


def test_later_sections_keep_their_own_references(shop: PlanSpec) -> None:
    assert shop.release == {"version": "0.0.0"}
    assert shop.stages == {"dev": {"vars": {"env": "dev"}}}
    assert shop.policies == [{"path": "policies/", "level": "mandatory"}]


def test_outputs_short_and_long_form(shop: PlanSpec) -> None:
    assert shop.outputs["site_id"].value == "${resources.site.id}"
    assert not shop.outputs["site_id"].sensitive
    first = shop.outputs["first_log"]
    assert first.value == '${resources.logs["us-east-1"].values.name}'
    assert (first.description, first.sensitive) == ("the US log bucket", True)
    assert shop.outputs["secret"].value == "s3cr3t"


def test_lifecycle(shop: PlanSpec) -> None:
    lc = shop.resources["build_info"].lifecycle
    assert (lc.prevent_destroy, lc.ignore_changes, lc.create_before_destroy) == (True, ["content"], True)
    assert not shop.resources["site"].lifecycle.prevent_destroy


def test_for_each_keys(shop: PlanSpec) -> None:
    assert shop.for_each_keys["logs"] == {"eu-west-1": "eu-west-1", "us-east-1": "us-east-1"}
    assert shop.for_each_keys["workers"] == {"small": {"cpu": 1}, "large": {"cpu": 4}}
    assert "site" not in shop.for_each_keys


def test_location_of_fields(shop: PlanSpec) -> None:
    loc = shop.location("resources", "logs", "provider")
    assert (loc.line, loc.column, loc.field) == (29, 5, "resources.logs.provider")
    assert shop.location("resources", "logs", "nothing").line == 27
    assert shop.location().line == 2


def test_plan_hash_covers_text_and_variables(write_plan: Callable[..., Path]) -> None:
    text = "version: 1\nvariables:\n  n: {type: number, default: 1}\n"
    path = write_plan(text)
    a = load_plan(path).plan_hash()
    assert a == load_plan(path).plan_hash()
    assert a != load_plan(path, vars={"n": "2"}).plan_hash()
    assert a != load_plan(write_plan(text + "# comment\n")).plan_hash()
    assert len(a) == 64


def test_env_defaults_to_process_environment(write_plan: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDORCH_PLANFILE_TEST", "7")
    path = write_plan('version: 1\nproviders:\n  core: {max_concurrency: "${env.CLOUDORCH_PLANFILE_TEST}"}\n')
    assert load_plan(path).providers["core"] == {"max_concurrency": "7"}


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read plan file") as info:
        load_plan(tmp_path / "nope.yaml")
    assert info.value.location is not None and info.value.location.file.endswith("nope.yaml")


def test_minimal_plan() -> None:
    plan = load_plan(GOOD / "minimal.yaml")
    assert plan.name is None and plan.outputs == {} and plan.stages is None and plan.backend is None


def test_anchors_and_merge_keys() -> None:
    plan = load_plan(GOOD / "anchors.yaml")
    assert plan.resources["copy"].type == "core.null"
    assert plan.resources["copy"].properties == {"values": {"size": "large"}}


def test_several_errors_say_how_many_more(write_plan: Callable[..., Path]) -> None:
    path = write_plan("version: 1\nresources:\n  a: {type: 1}\n  b: {type: 2}\n")
    with pytest.raises(ConfigError, match=r"and 1 more error"):
        load_plan(path)


def test_empty_sections_are_empty(write_plan: Callable[..., Path]) -> None:
    path = write_plan(
        "version: 1\nvariables:\nproviders:\n  core:\nresources:\n  a:\n    type: core.null\n"
        "    properties:\n    depends_on:\noutputs:\n"
    )
    plan = load_plan(path)
    assert plan.providers == {"core": {}}
    assert plan.resources["a"].properties == {} and plan.resources["a"].depends_on == []
