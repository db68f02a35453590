"""What Rego rules can reach of the input, and rules split over narrower inputs.

The split must never change a result: a rule that reaches a field through a helper in another
file must still see it. Each engine test here checks that the split really happened, so that it
exercises the risky path, and compares with the same policies on one shared input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudorch.policy import PolicySet, build_input, load_policies, reach

from .conftest import NOON, change, changeset


@dataclass(frozen=True)
class Src:
    text: str
    package: str = "main"


def scan(text: str, package: str = "main") -> reach.Scan:
    return reach.Scan.of(Src(text, package))


def test_strings_and_comments_are_told_apart() -> None:
    s = scan('package main\n# owner is ignored here\nx := "a#b"  # tail comment\ny := `raw#text`\n')
    assert "owner" not in s.tokens and "tail" not in s.tokens
    assert {"a#b", "raw#text", "x", "y"} <= s.tokens


def test_top_level_names_are_definitions_only() -> None:
    s = scan(
        "package lib.checks\nimport rego.v1\n"
        "default allow := false\n"
        "is_public(b) if {\n  local := b.acl\n  local == \"public-read\"\n}\n"
        "  indented_rule contains x if { some x in input.xs }\n"
        "deny[msg] { msg := \"v0\" }\n",
        "lib.checks",
    )
    assert {"allow", "is_public", "indented_rule", "deny", "lib", "checks"} <= s.defines
    assert "local" not in s.defines and "msg" not in s.defines and "import" not in s.defines


def test_closures_follow_helpers_across_files_and_packages() -> None:
    rule = scan("package main\nimport data.lib.helpers\ndeny contains a if { some c in input.changeset.changes\n"
                "  helpers.exposed(c); a := c.address }\n")
    helper = scan("package lib.helpers\nexposed(c) if c.after.acl == \"public\"\n", "lib.helpers")
    unrelated = scan("package main\nwarn_x contains 1 if input.stage == \"x\"\n")
    assert reach.closures([rule, helper, unrelated]) == [frozenset({0, 1}), frozenset({1}), frozenset({2})]


def test_data_used_dynamically_links_every_module() -> None:
    dyn = scan("package main\ndeny contains m if { some name; m := data.main[name][_] }\n")
    other = scan("package other\nhidden contains 1 if input.changeset.changes[_].after.secret\n", "other")
    assert reach.closures([dyn, other])[0] == frozenset({0, 1})
    bare = scan("package main\ndeny contains 1 if { x := data; x.other.hidden }\n")
    assert reach.closures([bare, other])[0] == frozenset({0, 1})


# ----------------------------------------------------------------------------- engine

N = 600  # over reach.MIN_CHANGES_TO_SPLIT, so the split is considered

RULES = {
    # two rules that name few fields: they should end up on a narrow input
    "kinds.rego": """package main
import rego.v1
deny_kind contains msg if {
  some c in input.changeset.changes
  c.type == "aws.lambda_function"
  msg := sprintf("%s: no lambdas", [c.address])
}
warn_replace contains msg if {
  some c in input.changeset.changes
  c.action == "replace"
  msg := sprintf("%s replaced", [c.address])
}
""",
    # this rule names only `after`; the field it depends on is named in helpers.rego
    "exposed.rego": """package main
import rego.v1
deny_exposed contains msg if {
  some c in input.changeset.changes
  is_exposed(c.after)
  msg := sprintf("%s: exposed", [c.address])
}
""",
    "helpers.rego": """package main
import rego.v1
is_exposed(after) if after.network.acl == "public-read"
""",
    "tags.rego": """package main
import rego.v1
deny_owner contains msg if {
  some c in input.changeset.changes
  not c.after.tags.owner
  msg := sprintf("%s: no owner tag", [c.address])
}
""",
}


def _changes(n: int) -> list[Any]:
    out = []
    for i in range(n):
        after = {"tags": {"owner": "web", "cost": str(i)}, "network": {"acl": "private", "vpc": "v"}, "size": i}
        kind = "aws.s3_bucket"
        if i == 7:
            after["network"] = {"acl": "public-read", "vpc": "v"}
        if i == 11:
            after["tags"] = {"cost": "x"}
        if i == 13:
            kind = "aws.lambda_function"
        out.append(change(f"r{i}", type=kind, action="replace" if i == 17 else "create", after=after))
    return out


def _policies(tmp_path: Path, **opts: Any) -> PolicySet:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    for name, text in RULES.items():
        (folder / name).write_text(text)
    return load_policies([{"path": "rules", "level": "mandatory"}], base_dir=tmp_path, **opts)


def _found(policies: PolicySet, doc: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(v.message, v.address) for v in policies.evaluate(doc).violations}


def test_split_inputs_find_what_one_input_finds(tmp_path: Path) -> None:
    doc = build_input(changeset(*_changes(N)), now=NOON)
    split = _policies(tmp_path, rego_workers=2)
    assert split.rego is not None
    groups = reach.plan_groups(doc, split.rego._own, split.rego._rule_scans, split.rego.workers)
    assert groups is not None and len(groups) == 2, "the split must happen for this test to mean anything"
    names = [{split.rego.rules[i].name for i in g.rules} for g in groups]
    # the helper's field travels with the rule that calls it
    exposed = next(g for g in groups if "deny_exposed" in {split.rego.rules[i].name for i in g.rules})
    sample = exposed.projection.apply(doc)["changeset"]["changes"][7]
    assert sample["after"]["network"]["acl"] == "public-read"
    assert all(names)

    expected = {
        ("r7: exposed", "r7"),
        ("r11: no owner tag", "r11"),
        ("r13: no lambdas", "r13"),
        ("r17 replaced", "r17"),
    }
    assert _found(split, doc) == expected
    one = _policies(tmp_path, rego_workers=1)
    assert _found(one, doc) == expected


def test_small_changesets_share_one_input(tmp_path: Path) -> None:
    doc = build_input(changeset(*_changes(50)), now=NOON)
    policies = _policies(tmp_path, rego_workers=2)
    assert policies.rego is not None
    assert reach.plan_groups(doc, policies.rego._own, policies.rego._rule_scans, 2) is None
    assert ("r7: exposed", "r7") in _found(policies, doc)


def test_a_policy_that_walks_the_input_is_never_split(tmp_path: Path) -> None:
    RULES_WALK = {**RULES, "walk.rego": "package main\nimport rego.v1\n"
                  "deny_walk contains p if { walk(input, [p, v]); v == \"needle\" }\n"}
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in RULES_WALK.items():
        (folder / name).write_text(text)
    policies = load_policies([{"path": "rules"}], base_dir=tmp_path, rego_workers=2)
    assert policies.rego is not None
    changes = _changes(N)
    changes[3] = change("r3", after={"deep": {"er": ["needle"]}})
    doc = build_input(changeset(*changes), now=NOON)
    assert reach.plan_groups(doc, policies.rego._own, policies.rego._rule_scans, 2) is None
    found = [v.message for v in policies.evaluate(doc).violations if v.policy_id == "walk"]
    assert '["changeset", "changes", 3, "after", "deep", "er", 0]' in found


@pytest.mark.parametrize("workers", [3, 4])
def test_more_interpreters_than_groups_share_the_work(tmp_path: Path, workers: int) -> None:
    doc = build_input(changeset(*_changes(N)), now=NOON)
    policies = _policies(tmp_path, rego_workers=workers)
    assert policies.rego is not None
    groups = reach.plan_groups(doc, policies.rego._own, policies.rego._rule_scans, workers)
    if groups is not None:
        assert sorted(k for g in groups for k in g.interpreters) == list(range(workers))
    assert len(_found(policies, doc)) == 4
