"""Precise unknowns through the CLI: an update touches only what uses a changed value.

Also: a type change is a replace, a value unknown at plan that resolves to the prior one is a
no-op at apply, an update that would need a replace at apply stops ("inconsistent final plan"),
checks across properties wait for unknown values, numeric provider settings are validated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cloudorch.changes import ChangeSet


def _actions(doc: dict[str, Any]) -> dict[str, str]:
    return {c["address"]: c["action"] for c in doc["changes"]}


def _changed(doc: dict[str, Any]) -> dict[str, str]:
    return {a: act for a, act in _actions(doc).items() if act != "no-op"}


def test_one_value_of_config_updates_config_only(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("precise_config.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 0, r.out + r.err
    data = plan.parent / "out" / "shop-data.txt"
    data_before = data.stat().st_mtime_ns
    config_id = cli("state", "show", str(plan), "config", "--json").json()["id"]

    r = cli("plan", str(plan), "--var", "owner=ops", "--json")
    assert r.code == 0, r.out + r.err
    doc = r.json()
    # the owner feeds owner_note only; config's id and prefix stay known across its update
    assert _changed(doc) == {"config": "update", "owner_note": "update"}
    assert doc["summary"]["replace"] == 0

    r = cli("apply", str(plan), "--auto-approve", "--var", "owner=ops", "--json")
    assert r.code == 0, r.out + r.err
    assert _changed(r.json()["changeset"]) == {"config": "update", "owner_note": "update"}
    assert data.stat().st_mtime_ns == data_before  # not replaced, not even rewritten
    assert cli("state", "show", str(plan), "config", "--json").json()["id"] == config_id
    r = cli("plan", str(plan), "--var", "owner=ops", "--detailed-exitcode")
    assert r.code == 0, r.out


def test_a_force_new_value_replaces_only_what_uses_it(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("precise_config.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    r = cli("plan", str(plan), "--var", "prefix=web", "--json")
    assert r.code == 0, r.out + r.err
    # data's path is force-new; config_ref reads data's hash, which follows the new content
    assert _changed(r.json()) == {"config": "update", "data": "replace", "config_ref": "update"}
    r = cli("apply", str(plan), "--auto-approve", "--var", "prefix=web")
    assert r.code == 0, r.out + r.err
    assert cli("plan", str(plan), "--var", "prefix=web", "--detailed-exitcode").code == 0


def test_a_type_change_is_a_replace(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("precise_config.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    doc = yaml.safe_load(plan.read_text())
    doc["resources"]["note_path"] = {"type": "core.wait", "properties": {"seconds": 0}}
    plan.write_text(yaml.safe_dump(doc))

    r = cli("plan", str(plan))
    assert r.code == 0, r.out + r.err
    assert "note_path (core.wait) will be replaced" in r.out
    assert "type changed from core.file to core.wait" in r.out
    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 0, r.out + r.err
    assert _changed(r.json()["changeset"]) == {"note_path": "replace"}
    assert not (plan.parent / "out" / "note_path.txt").exists()  # the old type deleted its object
    assert cli("state", "show", str(plan), "note_path", "--json").json()["type"] == "core.wait"
    assert cli("plan", str(plan), "--detailed-exitcode").code == 0


def test_unknown_at_plan_resolving_to_the_prior_value_is_a_no_op(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("precise_config.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    # a replaced file's id (its path) is unknown at plan, and the same path again at apply
    r = cli("plan", str(plan), "--replace", "owner_note", "--json")
    assert _changed(r.json()) == {"owner_note": "replace", "note_path": "update"}

    r = cli("apply", str(plan), "--auto-approve", "--replace", "owner_note", "--json")
    assert r.code == 0, r.out + r.err
    result = r.json()["result"]
    assert result["unchanged_after_resolve"] == ["note_path"]
    r = cli("apply", str(plan), "--auto-approve", "--replace", "owner_note")
    assert r.code == 0, r.out + r.err
    assert "1 unchanged after resolve" in r.out
    assert "0 updated" in r.out


def test_an_update_that_needs_a_replace_at_apply_stops(cli, fixture_plan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("precise_config.yaml")
    doc = yaml.safe_load(plan.read_text())
    doc["resources"]["guarded"] = {"type": "core.null", "properties": {"triggers": {"owner": "fixed"}}}
    doc["resources"]["after_guarded"] = {
        "type": "core.null",
        "properties": {"values": {"g": "${resources.guarded.id}"}},
    }
    plan.write_text(yaml.safe_dump(doc))
    assert cli("apply", str(plan), "--auto-approve").code == 0
    guarded_id = cli("state", "show", str(plan), "guarded", "--json").json()["id"]

    # a saved plan that shows an update of `guarded` although, once known, a force-new value
    # differs: what a provider's wrong prediction would produce
    saved = tmp_path / "saved.json"
    assert cli("plan", str(plan), "--var", "owner=ops", "-o", str(saved)).code == 0
    cs = json.loads(saved.read_text())
    for c in cs["changes"]:
        if c["address"] == "guarded":
            c["action"] = "update"
            c["after"]["triggers"] = {"owner": "${resources.config.owner}"}
            c["after_unknown"] = ["triggers"]
            c["depends_on"] = ["config"]
        if c["address"] == "after_guarded":
            c["action"] = "update"
            c["after_unknown"] = ["values"]
            c["after"]["values"] = {"g": "${resources.guarded.id}"}
            c["depends_on"] = ["guarded"]
    # saved again with a fresh digest, as a cloudorch whose provider predicted wrong would have
    # written it (an edited file alone is refused before anything runs)
    edited = ChangeSet.model_validate(cs)
    saved.unlink()
    edited.save(saved)

    r = cli("apply", str(saved), "--auto-approve", "--json")
    assert r.code != 0
    result = r.json()["result"]
    why = result["failed"]["guarded"]
    assert "inconsistent final plan" in why
    assert "`triggers`" in why and '"fixed"' in why and '"ops"' in why
    assert "run `cloudorch plan` again" in why
    assert "after_guarded" in result["skipped"]
    # never a silent replace
    assert cli("state", "show", str(plan), "guarded", "--json").json()["id"] == guarded_id


def test_content_from_an_arn_plans_without_internal_error(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("s3_object_from_arn.yaml")
    r = cli("plan", str(plan))
    assert r.code == 0, r.out + r.err
    assert "Internal error" not in r.out + r.err
    assert "Plan: 2 to create" in r.out
    r = cli("validate", str(plan))
    assert r.code == 0, r.out + r.err


def test_a_check_across_known_properties_still_fails_at_plan(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("s3_object_from_arn.yaml")
    doc = yaml.safe_load(plan.read_text())
    props = doc["resources"]["o"]["properties"]
    props.update(bucket="cloudorch-arn-test", content="text", source="file.txt")  # all known
    plan.write_text(yaml.safe_dump(doc))
    r = cli("plan", str(plan))
    assert r.code == 1
    assert "Internal error" not in r.out + r.err
    assert "set exactly one of `content` and `source`" in r.err
    assert f"{plan.name}:" in r.err  # located at the resource


def test_negative_max_concurrency_is_a_located_error(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("bad_core_concurrency.yaml")
    for command in ("validate", "plan", "apply"):
        args = [command, str(plan)] + (["--auto-approve"] if command == "apply" else [])
        r = cli(*args)
        assert r.code == 1, (command, r.out + r.err)
        assert f"{plan.name}:5:" in r.err
        assert "max_concurrency" in r.err
        assert "1 <= max_concurrency" in r.err  # the allowed range
