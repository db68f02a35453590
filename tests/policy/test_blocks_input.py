"""Policies see moves and imports: in each change and in `input.changeset`."""

from __future__ import annotations

from cloudorch.changes import Action, Change, ChangeSet
from cloudorch.policy import build_input


def test_moves_and_imports_are_in_the_policy_input() -> None:
    cs = ChangeSet(
        plan_name="p",
        plan_file="p.yaml",
        plan_hash="h",
        changes=[
            Change(address="site", type="aws.s3_bucket", provider="aws", action=Action.NOOP, moved_from="web"),
            Change(address="logs", type="aws.s3_bucket", provider="aws", action=Action.UPDATE, importing="old-logs"),
        ],
        moves=[{"from": "web", "to": "site"}],
        imports=[{"to": "logs", "id": "old-logs", "record": {"address": "logs"}}],
    )
    doc = build_input(cs)
    assert doc["changeset"]["moves"] == [{"from": "web", "to": "site"}]
    assert doc["changeset"]["imports"] == [{"to": "logs", "id": "old-logs"}]  # the record stays out
    by = {c["address"]: c for c in doc["changeset"]["changes"]}
    assert by["site"]["moved_from"] == "web" and by["site"]["importing"] is None
    assert by["logs"]["importing"] == "old-logs" and by["logs"]["moved_from"] is None
