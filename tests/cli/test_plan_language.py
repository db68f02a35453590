"""Locals, CEL expressions and `enabled:` through the CLI, on the plans in tests/fixtures/lang/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

LANG = Path(__file__).resolve().parent.parent / "fixtures" / "lang"


@pytest.fixture
def lang_plan(tmp_path: Path) -> Any:
    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copy(LANG / name, dest)
        return dest

    return copy


def _by_address(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in doc["changes"]}


def _state(cli: Any, plan: Path) -> dict[str, dict[str, Any]]:
    r = cli("state", "list", str(plan), "--json")
    assert r.code == 0, r.out + r.err
    addresses = [row["address"] for row in r.json()["resources"]]
    return {a: cli("state", "show", str(plan), a, "--json").json() for a in addresses}


def test_enabled_flips_a_resource_on_and_off_across_applies(cli, lang_plan) -> None:  # type: ignore[no-untyped-def]
    plan = lang_plan("conditional.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 0, r.out + r.err
    state = _state(cli, plan)
    # off: no cdn, the site uses the origin; edge only where its key enables it
    assert set(state) == {"site", "edge[eu]"}
    assert state["site"]["properties"]["values"] == {"mode": "direct", "domain": "origin.example.com", "cdn_id": None}
    assert state["edge[eu]"]["properties"]["values"] == {"region": "EU"}

    r = cli("plan", str(plan), "--var", "use_cdn=true", "--json")
    assert r.code == 0, r.out + r.err
    changes = _by_address(r.json())
    assert changes["cdn"]["action"] == "create"
    assert changes["edge[us]"]["action"] == "create"
    # the cdn's domain is a property the plan sets (known now); its id is chosen at create
    assert changes["site"]["action"] == "update"
    assert changes["site"]["after_unknown"] == ["values"]
    assert "cdn" in changes["site"]["depends_on"]

    r = cli("apply", str(plan), "--auto-approve", "--var", "use_cdn=true", "--json")
    assert r.code == 0, r.out + r.err
    state = _state(cli, plan)
    assert set(state) == {"cdn", "site", "edge[eu]", "edge[us]"}
    assert state["site"]["properties"]["values"] == {
        "mode": "cdn",
        "domain": "cdn.example.com",
        "cdn_id": state["cdn"]["id"],
    }
    assert cli("plan", str(plan), "--var", "use_cdn=true", "--detailed-exitcode").code == 0

    # off again: the objects in state are deleted, the site goes back to the origin
    r = cli("plan", str(plan), "--json")
    assert r.code == 0, r.out + r.err
    changes = _by_address(r.json())
    assert changes["cdn"]["action"] == "delete"
    assert changes["cdn"]["reasons"] == ["disabled (`enabled` is false)"]
    assert changes["edge[us]"]["action"] == "delete"
    assert changes["edge[eu]"]["action"] == "no-op"
    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 0, r.out + r.err
    state = _state(cli, plan)
    assert set(state) == {"site", "edge[eu]"}
    assert state["site"]["properties"]["values"]["domain"] == "origin.example.com"
    assert cli("plan", str(plan), "--detailed-exitcode").code == 0


def test_locals_and_unknown_propagation(cli, lang_plan) -> None:  # type: ignore[no-untyped-def]
    plan = lang_plan("locals_unknowns.yaml")
    r = cli("plan", str(plan), "--json")
    assert r.code == 0, r.out + r.err
    doc = r.json()
    changes = _by_address(doc)
    assert changes["base"]["after"]["values"] == {
        "replicas": 1,
        "subnets": ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"],
    }
    assert changes["base"]["after_unknown"] == []
    known = changes["known"]
    assert known["after"]["values"] == {"prefix": "DEV-shop", "team": "web", "tag_keys": ["env", "owner", "team"]}
    # `false && <unknown>` is known: CEL absorbs the unknown side
    assert known["after"]["triggers"] == {"never": False}
    assert known["after_unknown"] == []
    # reading the new resource's id (through a local, or directly) is unknown until apply
    assert changes["unknown"]["after_unknown"] == ["triggers", "values"]
    # a resource depends on what its locals read
    assert changes["unknown"]["depends_on"] == ["base"]
    assert changes["known"]["depends_on"] == ["base"]

    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 0, r.out + r.err
    state = _state(cli, plan)
    base_id = state["base"]["id"]
    assert state["unknown"]["properties"]["values"] == {"label": f"DEV-shop/{base_id}"}
    assert state["unknown"]["properties"]["triggers"] == {"size": len(base_id)}
    r = cli("output", str(plan), "--json")
    assert r.code == 0, r.out + r.err
    assert r.json()["label"] == f"DEV-shop/{base_id}"
    assert cli("plan", str(plan), "--detailed-exitcode").code == 0

    # a new variable value flows through the locals into exactly what reads them
    r = cli("plan", str(plan), "--var", "env=prod", "--json")
    assert r.code == 0, r.out + r.err
    changes = _by_address(r.json())
    assert changes["base"]["after"]["values"]["replicas"] == 3
    assert changes["known"]["after"]["triggers"] == {"never": True}
    assert changes["unknown"]["after"]["values"] == {"label": f"PROD-shop/{base_id}"}


def test_sensitive_values_stay_sensitive_through_expressions(cli, lang_plan) -> None:  # type: ignore[no-untyped-def]
    plan = lang_plan("sensitive.yaml")
    r = cli("plan", str(plan), "--json")
    assert r.code == 0, r.out + r.err
    changes = _by_address(r.json())
    assert "values" in changes["client"]["sensitive"]
    assert "triggers" not in changes["client"]["sensitive"]
    assert "values" in changes["checksum"]["sensitive"]
    for text in (r.out, cli("plan", str(plan)).out):
        assert "secret-123456" not in text.lower()
        assert "NOT SECRET" in text
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 0, r.out + r.err
    assert "secret-123456" not in (r.out + r.err).lower()
    r = cli("output", str(plan), "--json")
    assert "secret-123456" not in r.out.lower()

    # an output built from a sensitive local must say so
    bad = lang_plan("sensitive_output.yaml")
    r = cli("plan", str(bad))
    assert r.code == 1
    assert "output `header`" in r.err and "sensitive" in r.err
    assert "sensitive_output.yaml:10" in r.err


def test_an_expression_failing_on_a_resource_value_is_located(cli, lang_plan) -> None:  # type: ignore[no-untyped-def]
    plan = lang_plan("plan_time_error.yaml")
    r = cli("plan", str(plan), "--json")
    assert r.code == 1
    err = r.json()
    assert "no matching overload for '_+_'" in err["message"]
    assert "${resources.a.values.n + '-x'}" in err["message"]
    assert err["location"]["line"] == 12
    assert err["location"]["field"] == "resources.b.properties.values.s"
    assert "CEL" in err["hint"]
    r = cli("validate", str(plan))
    assert r.code == 0, r.out + r.err  # nothing is wrong before a's value is known


def test_disabling_a_protected_resource_is_refused(cli, lang_plan) -> None:  # type: ignore[no-untyped-def]
    plan = lang_plan("protected_disabled.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    r = cli("plan", str(plan), "--var", "keep=false")
    assert r.code == 1
    assert "db has lifecycle.prevent_destroy set and would be destroyed" in r.err
    assert "protected_disabled.yaml:" in r.err
    assert "db" in _state(cli, plan)
