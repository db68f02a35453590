"""The drift engine's parts: ignore_changes paths, the planner keeping ignored values, rollback inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from cloudorch import api
from cloudorch.engine.drift import pick_serial, version_instances
from cloudorch.engine.ignore import keep_ignored, path_steps, without_paths
from cloudorch.engine.providerset import ProviderSet
from cloudorch.errors import ConfigError, Location
from cloudorch.provider.contract import Observed, ProviderContext, ResourceProperties, ResourceType, prop
from cloudorch.provider.core import CoreProvider
from cloudorch.provider.registry import Registry
from cloudorch.state.backends.base import HistoryEntry
from cloudorch.state.model import ResourceRecord, State, sensitive_marker


def test_path_steps() -> None:
    assert path_steps("content") == ["content"]
    assert path_steps("values.owner") == ["values", "owner"]
    assert path_steps('tags["cost.centre"]') == ["tags", "cost.centre"]
    assert path_steps("rules[1].id") == ["rules", 1, "id"]


def test_keep_ignored_takes_the_cloud_value_else_state() -> None:
    desired = {"content": "plan", "values": {"a": "plan", "b": "plan"}, "mode": "0644"}
    seen = {"content": "cloud", "values": {"a": "cloud", "b": "cloud"}}
    recorded = {"content": "state", "values": {"a": "state"}, "mode": "0600"}
    out, kept = keep_ignored(desired, ["content", "values.a", "mode"], seen, recorded)
    assert out == {"content": "cloud", "values": {"a": "cloud", "b": "plan"}, "mode": "0600"}
    assert kept == {"content", "values", "mode"}
    assert desired["values"] == {"a": "plan", "b": "plan"}  # the plan's own dict is not touched
    # a nested key the cloud does not have is dropped from what would be written
    out, _ = keep_ignored({"values": {"a": "plan"}}, ["values.a"], {"values": {}}, {})
    assert out == {"values": {}}
    # a sensitive value state holds only as a hash is never written back
    out, kept = keep_ignored({"secret": "s3cr3t"}, ["secret"], {}, {"secret": sensitive_marker("old")})
    assert out == {"secret": "s3cr3t"} and kept == set()


def test_without_paths_only_strips_under_its_key() -> None:
    value = {"a": 1, "b": 2}
    assert without_paths("values", value, ["values.a", "tags.a"]) == {"b": 2}
    assert without_paths("tags", value, ["values.a"]) is value


PLAN = """\
version: 1
name: ign
resources:
  f:
    type: core.file
    properties: {path: out/f.txt, content: "from plan\\n", mode: "MODE"}
    lifecycle: {ignore_changes: [content]}
  n:
    type: core.null
    properties: {values: {owner: "OWNER", team: "TEAM"}}
    lifecycle: {ignore_changes: [values.owner]}
"""


def _write(path: Path, mode: str, owner: str, team: str) -> None:
    path.write_text(PLAN.replace("MODE", mode).replace("OWNER", owner).replace("TEAM", team))


def test_planner_never_writes_an_ignored_value_back(tmp_path: Path) -> None:
    plan = tmp_path / "ign.yaml"
    _write(plan, "0644", "ann", "web")
    opts = api.RunOptions(plan_file=plan)
    assert api.apply(opts) is not None
    (tmp_path / "out" / "f.txt").write_text("edited by hand\n")
    assert not api.plan(opts).has_changes  # the only drift is ignored
    _write(plan, "0600", "ben", "ops")  # the plan now changes ignored and non-ignored values
    cs = api.plan(opts)
    by = cs.by_address()
    assert [d.path for d in by["f"].diff] == ["mode"]
    assert [(d.path, d.before, d.after) for d in by["n"].diff] == [
        ("values", {"owner": "ann", "team": "web"}, {"owner": "ann", "team": "ops"})
    ]
    result = api.apply(opts)
    assert result is not None and result.ok
    assert (tmp_path / "out" / "f.txt").read_text() == "edited by hand\n"
    assert oct((tmp_path / "out" / "f.txt").stat().st_mode & 0o777) == "0o600"
    assert result.state.resources["n"].properties["values"] == {"owner": "ann", "team": "ops"}
    # deleted outside: re-created from the plan, ignored properties included
    (tmp_path / "out" / "f.txt").unlink()
    assert api.apply(opts) is not None
    assert (tmp_path / "out" / "f.txt").read_text() == "from plan\n"


def test_unknown_ignore_changes_property_is_a_located_error(tmp_path: Path) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text(PLAN.replace("MODE", "0644").replace("[content]", "[contents]"))
    with pytest.raises(ConfigError) as err:
        api.validate(api.RunOptions(plan_file=plan))
    assert err.value.location is not None and err.value.location.line == 7
    assert err.value.hint is not None and "content" in err.value.hint


class SecretProperties(ResourceProperties):
    name: str = prop(description="A name.")
    token: str = prop("", sensitive=True, description="A secret.")


class SecretResource(ResourceType[SecretProperties]):
    """A type with a sensitive property, for the rollback rule about hashed values."""

    type_name = "vault.secret"
    Properties = SecretProperties

    def create(self, address: str, props: SecretProperties) -> Observed:
        return Observed(props.name, props.model_dump())

    def read(self, address: str, id: str, props: SecretProperties) -> Observed | None:
        return Observed(id, props.model_dump())

    def update(self, address: str, id: str, old: SecretProperties, new: SecretProperties) -> Observed:
        return Observed(id, new.model_dump())

    def delete(self, address: str, id: str, props: SecretProperties) -> None:
        return None


class VaultProvider(CoreProvider):
    name = "vault"
    resource_types: ClassVar[Any] = (SecretResource,)


def test_rollback_restores_a_sensitive_value_only_when_the_plan_has_it(tmp_path: Path) -> None:
    providers = ProviderSet(Registry({"vault": VaultProvider}), {}, ProviderContext(plan_dir=tmp_path))
    version = State(serial=1)
    for address, token in (("a", "old-a"), ("b", "old-b")):
        version.resources[address] = ResourceRecord(
            address=address,
            type="vault.secret",
            provider="vault",
            id=address,
            properties={"name": address, "token": sensitive_marker(token)},
            dependencies=["a"] if address == "b" else [],
        )
    plan_values = {"a": {"token": "old-a"}, "b": {"token": "new-b"}}
    instances, edges, missing = version_instances(version, [], plan_values, providers, Location("p.yaml"))
    assert [(m.address, m.property) for m in missing] == [("b", "token")]
    assert instances[0].properties == {"name": "a", "token": "old-a"}
    assert edges == [("a", "b")]


def _entry(serial: int, current: bool = False) -> HistoryEntry:
    return HistoryEntry(serial, "L", "", 0, "", current)


def test_pick_serial() -> None:
    history = [_entry(5, True), _entry(4), _entry(2)]
    assert pick_serial(history, 5, 2, None) == 2
    assert pick_serial(history, 5, None, 1) == 4
    assert pick_serial(history, 5, None, 2) == 2
    for to, steps in ((None, None), (3, None), (5, None), (None, 3), (2, 1)):
        with pytest.raises(ConfigError):
            pick_serial(history, 5, to, steps)
