"""`--exclude` globs, `moved:` and data sources on core types through the CLI (no cloud needed).

The AWS side (data sources on moto, bulk imports, moves counted in cloud calls) is in
providers/aws/tests/test_aws_blocks.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _planned(cli: Any, plan: Path, *flags: str) -> dict[str, str]:
    r = cli("plan", str(plan), "--json", *flags)
    assert r.code == 0, r.out + r.err
    return {c["address"]: c["action"] for c in r.json()["changes"]}


def test_exclude_globs_leave_out_matches_and_their_dependents(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("blocks_exclude.yaml")
    assert set(_planned(cli, plan, "--exclude", "web_*")) == {"db", "reader"}
    assert set(_planned(cli, plan, "--exclude", "web_b[*]")) == {"db", "reader", "web_a", "front"}
    # a literal address still means itself and its instances; brackets are never a character class
    assert set(_planned(cli, plan, "--exclude", "web_b[eu]", "--exclude", "db")) == {"web_a", "front", "web_b[us]"}
    r = cli("plan", str(plan), "--exclude", "nothing_*")
    assert r.code == 1 and "--exclude nothing_*: no such resource" in r.err
    r = cli("apply", str(plan), "--auto-approve", "--exclude", "*_a", "--json")
    assert r.code == 0, r.err
    addrs = [x["address"] for x in cli("state", "list", str(plan), "--json").json()["resources"]]
    assert sorted(addrs) == ["db", "edge", "reader", "web_b[eu]", "web_b[us]"]
    # destroy everything but the web_b instances (and what depends on them)
    r = cli("destroy", str(plan), "--auto-approve", "--exclude", "web_b*")
    assert r.code == 0, r.err
    addrs = [x["address"] for x in cli("state", "list", str(plan), "--json").json()["resources"]]
    assert sorted(addrs) == ["edge", "web_b[eu]", "web_b[us]"]


def test_moved_between_keys_keeps_the_object_and_its_dependents(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("blocks_moved_core.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    ids = {x["address"]: x["id"] for x in cli("state", "list", str(plan), "--json").json()["resources"]}
    text = plan.read_text().replace("for_each: [a, b]", "for_each: [first, b]").replace("box[a]", "box[first]")
    # `values.key` follows each.key, so the moved object is updated in place, never replaced
    plan.write_text(text + 'moved:\n  - {from: "box[a]", to: "box[\\"first\\"]"}\n')
    r = cli("plan", str(plan), "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["moves"] == [{"from": "box[a]", "to": "box[first]"}]
    by = {c["address"]: c for c in doc["changes"]}
    assert set(by) == {"box[first]", "box[b]", "user"}
    assert by["box[first]"]["action"] == "update" and by["box[first]"]["moved_from"] == "box[a]"
    assert by["user"]["action"] == "update"
    text_plan = cli("plan", str(plan))
    assert "box[first] (core.null) move from box[a], then will be updated in place" in text_plan.out
    assert cli("apply", str(plan), "--auto-approve").code == 0
    after = {x["address"]: x["id"] for x in cli("state", "list", str(plan), "--json").json()["resources"]}
    assert after["box[first]"] == ids["box[a]"] and "box[a]" not in after
    r = cli("plan", str(plan), "--json")
    assert r.json()["summary"]["has_changes"] is False
    assert any("nothing at box[a] in state" in n for n in r.json()["notes"])
    assert "Note: moved: nothing at box[a] in state" in cli("plan", str(plan)).out


def test_a_moved_source_the_plan_still_declares_is_an_error(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("blocks_moved_core.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    plan.write_text(plan.read_text() + 'moved:\n  - {from: "box[a]", to: "box[z]"}\n')
    r = cli("plan", str(plan))
    assert r.code == 1 and "the plan file still declares box[a]" in r.err and "blocks_moved_core.yaml:11" in r.err


def test_data_on_a_type_without_lookup_is_a_located_error(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = tmp_path / "p.yaml"
    plan.write_text("version: 1\ndata:\n  x: {type: core.null, id: abc}\n")
    r = cli("plan", str(plan))
    assert r.code == 1
    assert "resource type core.null does not support lookup" in r.err and "p.yaml:3" in r.err
    plan.write_text("version: 1\ndata:\n  x: {type: core.nul, id: abc}\n")
    r = cli("plan", str(plan))
    assert r.code == 1 and "provider core has no resource type core.nul" in r.err and "p.yaml:3" in r.err
    assert "did you mean `core.null`" in r.err


def test_imports_of_files_respect_exclude_and_apply_records_them(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "out").mkdir()
    for name in ("a", "b"):
        (tmp_path / "out" / f"{name}.txt").write_text(f"made by hand {name}\n")
        (tmp_path / "out" / f"{name}.txt").chmod(0o644)
    plan = tmp_path / "files.yaml"
    plan.write_text(
        "version: 1\n"
        "imports:\n"
        "  - {for_each: [a, b], to: 'doc[${each.key}]', id: 'out/${each.key}.txt'}\n"
        "resources:\n"
        "  doc:\n"
        "    type: core.file\n"
        "    for_each: [a, b]\n"
        '    properties: {path: "out/${each.key}.txt", content: "made by hand ${each.key}\\n", mode: "0644"}\n'
    )
    r = cli("plan", str(plan), "--json", "--exclude", "doc[b]")
    assert r.code == 0, r.err
    doc = r.json()
    assert [(c["address"], c["action"], c["importing"]) for c in doc["changes"]] == [("doc[a]", "no-op", "out/a.txt")]
    assert [i["to"] for i in doc["imports"]] == ["doc[a]"]
    text = cli("plan", str(plan)).out
    assert "import \"out/a.txt\"" in text and "1 to import" not in text and "2 to import." in text
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 0, r.err
    assert "Apply complete! 0 created, 0 updated, 0 replaced, 0 destroyed, 2 imported in" in r.out
    addrs = sorted(x["address"] for x in cli("state", "list", str(plan), "--json").json()["resources"])
    assert addrs == ["doc[a]", "doc[b]"]
    assert (tmp_path / "out" / "a.txt").read_text() == "made by hand a\n"  # adopted, not rewritten
    assert cli("plan", str(plan), "--json").json()["summary"]["has_changes"] is False
