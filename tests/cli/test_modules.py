"""Modules through the CLI: expansion, addresses, the graph, sensitivity, located errors, git sources.

The estate fixture uses a network module per region (for_each over a map) that itself uses a subnet
module per zone; everything is `core.null`, so apply runs for real with no cloud.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURES / "estate", tmp_path / "estate")
    shutil.copytree(FIXTURES / "broken", tmp_path / "estate" / "modules" / "broken")
    monkeypatch.chdir(tmp_path / "estate")
    return tmp_path / "estate" / "plan.yaml"


def _plan_json(cli: Any, plan: Path, *args: str) -> dict[str, Any]:
    r = cli("plan", str(plan), "--json", *args)
    assert r.code in (0, 2), r.err
    doc: dict[str, Any] = r.json()
    return doc


REGIONS = ("eu", "us", "ap")


def test_two_level_module_applies_and_then_plans_no_change(cli: Any, estate: Path) -> None:
    r = cli("apply", str(estate), "--auto-approve", "--json")
    assert r.code == 0, r.err
    listed = cli("state", "list", str(estate), "--json").json()
    addresses = {x["address"] for x in listed["resources"]}
    want = {"peering"}
    for region in REGIONS:
        want |= {
            f"module.net[{region}].vpc",
            f"module.net[{region}].sg",
            f"module.net[{region}].module.subnet[a].subnet",
            f"module.net[{region}].module.subnet[b].subnet",
        }
    assert addresses == want
    state = json.loads((estate.parent / ".cloudorch" / "state" / "estate.json").read_text())["state"]["resources"]
    eu_vpc = state["module.net[eu].vpc"]
    # inputs reached the module, the nested module got the parent's resource, the root got the outputs
    assert eu_vpc["properties"]["values"] == {"cidr": "10.1.0.0/16", "region": "eu"}
    eu_sub_b = state["module.net[eu].module.subnet[b].subnet"]["properties"]["values"]
    assert eu_sub_b == {"vpc": eu_vpc["id"], "cidr": "10.1.b.0/24"}
    peering = state["peering"]["properties"]["values"]
    assert peering == {"from": eu_vpc["id"], "to": state["module.net[us].module.subnet[a].subnet"]["id"]}
    outputs = cli("output", str(estate), "--json").json()
    assert outputs == {"eu_vpc": eu_vpc["id"], "us_cidr": "10.2.0.0/16"}
    again = cli("plan", str(estate), "--detailed-exitcode")
    assert again.code == 0, again.out + again.err


def test_a_resource_depends_on_exactly_the_module_resources_it_references(cli: Any, estate: Path) -> None:
    doc = cli("graph", str(estate), "--json").json()
    into_peering = sorted(e["from"] for e in doc["edges"] if e["to"] == "peering")
    assert into_peering == ["module.net[eu].vpc", "module.net[us].module.subnet[a].subnet"]
    modules = {n["id"]: n.get("module") for n in doc["nodes"]}
    assert modules["module.net[eu].module.subnet[b].subnet"] == "module.net[eu].module.subnet[b]"
    assert modules["peering"] is None


def test_graph_draws_module_boundaries(cli: Any, estate: Path) -> None:
    dot = cli("graph", str(estate)).out
    assert 'subgraph "cluster_module.net[eu]" {' in dot
    outer = dot.index('subgraph "cluster_module.net[eu]" {')
    inner = dot.index('subgraph "cluster_module.net[eu].module.subnet[a]" {')
    node = dot.index('"module.net[eu].module.subnet[a].subnet" [label=')
    assert outer < inner < node
    mermaid = cli("graph", str(estate), "--format", "mermaid").out
    assert 'subgraph n_module_module_net_eu_["module.net[eu]"]' in mermaid
    assert mermaid.count("\n  end") == 3 and mermaid.count("\n    end") == 6


def test_target_and_state_mv_take_module_addresses(cli: Any, estate: Path) -> None:
    doc = _plan_json(cli, estate, "--target", "module.net[ap]")
    assert sorted(c["address"] for c in doc["changes"]) == [
        "module.net[ap].module.subnet[a].subnet",
        "module.net[ap].module.subnet[b].subnet",
        "module.net[ap].sg",
        "module.net[ap].vpc",
    ]
    assert cli("apply", str(estate), "--auto-approve").code == 0
    moved = cli("state", "mv", str(estate), "module.net[ap].sg", "module.net[ap].sg_old")
    assert moved.code == 0, moved.err
    doc = _plan_json(cli, estate)
    actions = {c["address"]: c["action"] for c in doc["changes"] if c["action"] != "no-op"}
    assert actions == {"module.net[ap].sg": "create", "module.net[ap].sg_old": "delete"}


def test_sensitive_inputs_stay_sensitive(cli: Any, estate: Path) -> None:
    r = cli("plan", str(estate))
    assert r.code in (0, 2)
    assert "s3cr3t-pass-value" not in r.out + r.err
    plan = estate.parent / "lit.yaml"
    plan.write_text(
        "version: 1\nname: lit\nmodules:\n  one:\n    source: ./modules/network\n"
        "    inputs: {prefix: '10.9', region: x, password: literal-secret-123}\n"
    )
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 0, r.err
    assert "module.one.sg" in r.out
    assert "literal-secret-123" not in r.out + r.err
    shown = cli("state", "show", str(plan), "module.one.sg", "--json")
    assert shown.code == 0 and "literal-secret-123" not in shown.out
    assert shown.json()["sensitive"] == ["values"]
    assert "literal-secret-123" not in (estate.parent / ".cloudorch" / "state" / "lit.json").read_text()


def test_a_sensitive_module_output_needs_a_sensitive_root_output(cli: Any, estate: Path) -> None:
    mod = estate.parent / "modules" / "network" / "module.yaml"
    mod.write_text(mod.read_text() + "  pw: {value: '${var.password}', sensitive: true}\n")
    plan = estate.parent / "leak.yaml"
    plan.write_text(
        "version: 1\nname: leak\nmodules:\n  one:\n    source: ./modules/network\n"
        "    inputs: {prefix: '10.9', region: x, password: literal-secret-123}\n"
        "outputs:\n  pw: '${modules.one.pw}'\n"
    )
    r = cli("validate", str(plan))
    assert r.code == 1
    assert "output `pw` is built from a sensitive module output" in r.err
    assert f"{plan.name}:8:" in r.err  # the root output, where the fix goes


def _error(cli: Any, plan: Path, text: str) -> str:
    plan.write_text(text)
    r = cli("validate", str(plan))
    assert r.code == 1, r.out
    assert "Traceback" not in r.err
    return str(r.err)


def _call(inputs: str, extra: str = "") -> str:
    return f"version: 1\nname: bad\nmodules:\n  b:\n    source: ./modules/broken\n    inputs: {inputs}\n{extra}"


def test_input_errors_are_located_at_the_call_site(cli: Any, estate: Path) -> None:
    plan = estate.parent / "bad.yaml"
    err = _error(cli, plan, _call("{name: x, nmae: y}"))
    assert "bad.yaml:6:" in err and "module `b` has no variable `nmae`" in err
    assert "modules/broken/module.yaml" in err and "did you mean `name`?" in err
    err = _error(cli, plan, _call("{size: 2}"))
    assert "bad.yaml:6:" in err and "module `b` needs input `name`" in err
    assert "broken/module.yaml:2:" in err  # where the variable is declared
    err = _error(cli, plan, _call("{name: x, size: big}"))
    assert "bad.yaml:6:" in err and "input `size` of module `b` must be a number, got a string" in err


def test_errors_inside_a_module_name_the_module_file_and_the_call_site(cli: Any, estate: Path) -> None:
    broken = estate.parent / "modules" / "broken" / "module.yaml"
    plan = estate.parent / "bad.yaml"
    plan.write_text(_call("{name: x}"))
    r = cli("validate", str(plan))
    assert r.code == 1
    assert f"{broken}:7:" in r.err  # the `${var.nme}` line of the module file
    assert "undeclared variable `nme`" in r.err and "did you mean `name`?" in r.err
    assert "module.b, called at" in r.err and "bad.yaml:4:" in r.err
    broken.write_text(broken.read_text().replace("${var.nme}", "${var.name}") + "providers: {aws: {}}\n")
    r = cli("validate", str(plan))
    assert r.code == 1 and f"{broken}:10:" in r.err and "`providers:` belongs in the root plan" in r.err


def test_a_type_error_in_a_module_resource_points_into_the_module(cli: Any, estate: Path) -> None:
    broken = estate.parent / "modules" / "broken" / "module.yaml"
    broken.write_text(broken.read_text().replace("${var.nme}", "${var.name}").replace("values:", "valuez:"))
    plan = estate.parent / "bad.yaml"
    plan.write_text(_call("{name: x}"))
    r = cli("validate", str(plan))
    assert r.code == 1
    assert f"{broken}:7:" in r.err and "in module.b, called at" in r.err


def test_references_to_module_outputs_are_checked(cli: Any, estate: Path) -> None:
    plan = estate.parent / "bad.yaml"
    fixed = estate.parent / "modules" / "broken" / "module.yaml"
    fixed.write_text(fixed.read_text().replace("${var.nme}", "${var.name}"))
    err = _error(cli, plan, _call("{name: x}", "outputs:\n  o: '${modules.b.idd}'\n"))
    assert "bad.yaml:8:" in err and "has no output `idd`" in err and "did you mean `id`?" in err
    err = _error(cli, plan, _call("{name: x}", "outputs:\n  o: '${modules.c.id}'\n"))
    assert "refers to module `c`" in err
    err = _error(cli, plan, _call("{name: x}", "outputs:\n  o: '${modules.b[eu].id}'\n"))
    assert "has no for_each" in err


def test_modules_feeding_each_other_in_a_cycle_is_a_located_error(cli: Any, estate: Path) -> None:
    plan = estate.parent / "cycle.yaml"
    fixed = estate.parent / "modules" / "broken" / "module.yaml"
    fixed.write_text(
        "variables: {name: {type: string}}\n"
        "resources: {thing: {type: core.null, properties: {values: {name: '${var.name}'}}}}\n"
        "outputs: {echo: '${var.name}'}\n"
    )
    err = _error(
        cli,
        plan,
        "version: 1\nname: cyc\nmodules:\n"
        "  a: {source: ./modules/broken, inputs: {name: '${modules.b.echo}'}}\n"
        "  b: {source: ./modules/broken, inputs: {name: '${modules.a.echo}'}}\n",
    )
    assert "modules refer to each other in a cycle" in err
    assert "cycle.yaml:" in err and "module.a input `name`" in err and "module.b output `echo`" in err


def test_a_missing_module_folder_is_located(cli: Any, estate: Path) -> None:
    err = _error(cli, estate.parent / "bad.yaml", "version: 1\nmodules:\n  x: {source: ./modules/nope}\n")
    assert "bad.yaml:3:" in err and "no module.yaml in" in err


# --------------------------------------------------------------------------- git sources


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@x"
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A bare repository holding `mods/thing/module.yaml` (value `one`), and the work tree that pushes to it."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.setenv("CLOUDORCH_MODULE_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    (work / "mods" / "thing").mkdir(parents=True)
    _git(work, "init", "-q", "-b", "main")
    _write_version(work, "one")
    bare = tmp_path / "repo.git"
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return work, bare


def _write_version(work: Path, version: str) -> None:
    (work / "mods" / "thing" / "module.yaml").write_text(
        "variables: {name: {type: string}}\n"
        f"resources: {{thing: {{type: core.null, properties: {{values: {{name: '${{var.name}}', v: {version}}}}}}}}}\n"
    )
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", version)


def _version(cli: Any, plan: Path) -> str:
    doc = _plan_json(cli, plan)
    (change,) = doc["changes"]
    assert change["address"] == "module.t.thing"
    return str(change["after"]["values"]["v"])


def test_a_git_module_is_pinned_by_the_lock_file_until_updated(
    cli: Any, git_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    work, bare = git_repo
    project = tmp_path / "project"
    project.mkdir()
    plan = project / "plan.yaml"
    plan.write_text(
        f"version: 1\nname: g\nmodules:\n  t:\n    source: git+file://{bare}//mods/thing?ref=main\n"
        "    inputs: {name: x}\n"
    )
    assert _version(cli, plan) == "one"
    lock = json.loads((project / "cloudorch.lock").read_text())
    entry = lock["modules"][f"git+file://{bare}//mods/thing"]
    assert entry["ref"] == "main" and entry["commit"] == _git(work, "rev-parse", "HEAD")

    _write_version(work, "two")  # the branch moves
    _git(work, "push", "-q", str(bare), "main")
    assert _version(cli, plan) == "one"  # the pinned commit, not the branch
    shutil.rmtree(tmp_path / "cache")  # even from an empty cache
    assert _version(cli, plan) == "one"

    r = cli("modules", "update", str(plan), "--json")
    assert r.code == 0, r.err
    assert r.json()["modules"][f"git+file://{bare}//mods/thing"]["commit"] == _git(work, "rev-parse", "HEAD")
    assert _version(cli, plan) == "two"

    plan.write_text(plan.read_text().replace("ref=main", "ref=v1"))
    _git(work, "tag", "v1", "HEAD~1")
    _git(work, "push", "-q", str(bare), "v1")
    r = cli("plan", str(plan))
    assert r.code == 1 and "asks for ref v1, but cloudorch.lock pins ref main" in r.err
    assert "plan.yaml:5:" in r.err and "cloudorch modules update" in r.err
    assert cli("modules", "update", str(plan)).code == 0
    assert _version(cli, plan) == "one"


def test_a_git_source_that_cannot_be_fetched_is_located(cli: Any, git_repo: tuple[Path, Path], tmp_path: Path) -> None:
    _, bare = git_repo
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"version: 1\nmodules:\n  t:\n    source: git+file://{bare}//mods/thing?ref=nope\n")
    r = cli("validate", str(plan))
    assert r.code == 1 and "plan.yaml:4:" in r.err and "ref 'nope' is not a branch, tag or commit" in r.err
    plan.write_text(f"version: 1\nmodules:\n  t:\n    source: git+file://{bare}//mods/other?ref=main\n")
    r = cli("validate", str(plan))
    assert r.code == 1 and "no folder 'mods/other'" in r.err
    assert not (tmp_path / "cloudorch.lock").exists()


def test_a_saved_plan_is_stale_once_a_module_file_changed(cli: Any, estate: Path) -> None:
    saved = estate.parent / "estate.plan"
    assert cli("plan", str(estate), "-o", str(saved)).code in (0, 2)
    sub = estate.parent / "modules" / "network" / "subnet" / "module.yaml"
    sub.write_text(sub.read_text().replace('cidr: "${var.cidr}"', 'cidr: "${var.cidr}", zone: x'))
    r = cli("apply", str(saved), "--auto-approve")
    assert r.code == 1, r.out
    assert "changed" in r.err or "stale" in r.err.lower(), r.err
    assert (
        not (estate.parent / ".cloudorch" / "state" / "estate.json").exists()
        or "module.net" not in (estate.parent / ".cloudorch" / "state" / "estate.json").read_text()
    )


def test_a_for_each_resource_reads_the_module_instance_of_its_own_key(cli: Any, estate: Path) -> None:
    plan = estate.parent / "per_key.yaml"
    plan.write_text(
        "version: 1\nname: perkey\nvariables:\n  regions: {type: map, default: {eu: '10.1', us: '10.2'}}\n"
        "modules:\n  net:\n    source: ./modules/network\n    for_each: '${var.regions}'\n"
        "    inputs: {prefix: '${each.value}', region: '${each.key}', password: pw-123456}\n"
        "resources:\n  peer:\n    type: core.null\n    for_each: '${var.regions}'\n"
        "    properties: {values: {vpc: '${modules.net[each.key].vpc_id}', "
        "sub: 'sub-${modules.net[each.key].subnet_ids.a}', cidr: '${modules.net[each.key].cidr}'}}\n"
    )
    doc = cli("graph", str(plan), "--json").json()
    into = {n: sorted(e["from"] for e in doc["edges"] if e["to"] == n) for n in ("peer[eu]", "peer[us]")}
    assert into == {
        "peer[eu]": ["module.net[eu].module.subnet[a].subnet", "module.net[eu].vpc"],
        "peer[us]": ["module.net[us].module.subnet[a].subnet", "module.net[us].vpc"],
    }
    assert cli("apply", str(plan), "--auto-approve").code == 0
    state = json.loads((estate.parent / ".cloudorch" / "state" / "perkey.json").read_text())["state"]["resources"]
    for key, prefix in (("eu", "10.1"), ("us", "10.2")):
        assert state[f"peer[{key}]"]["properties"]["values"] == {
            "vpc": state[f"module.net[{key}].vpc"]["id"],
            "sub": "sub-" + state[f"module.net[{key}].module.subnet[a].subnet"]["id"],
            "cidr": f"{prefix}.0.0/16",
        }
    plan.write_text(plan.read_text().replace("[each.key].cidr", "[each.key].cidrr"))
    r = cli("validate", str(plan))
    assert r.code == 1 and "has no output `cidrr`" in r.err and "per_key.yaml:" in r.err


def test_enabled_false_leaves_a_module_instance_out_and_deletes_what_it_made(cli: Any, estate: Path) -> None:
    plan = estate.parent / "toggle.yaml"
    text = (
        "version: 1\nname: toggle\nvariables:\n  us_on: {type: bool, default: true}\n"
        "modules:\n  net:\n    source: ./modules/network\n"
        "    for_each: {eu: {use: true, prefix: '10.1'}, us: {use: '${var.us_on}', prefix: '10.2'}}\n"
        "    enabled: '${each.value.use}'\n"
        "    inputs: {prefix: '${each.value.prefix}', region: '${each.key}', password: pw-123456, zones: [a]}\n"
        "outputs:\n  all: '${modules.net}'\n"
    )
    plan.write_text(text)
    assert cli("apply", str(plan), "--auto-approve").code == 0
    listed = {x["address"] for x in cli("state", "list", str(plan), "--json").json()["resources"]}
    assert "module.net[us].vpc" in listed and "module.net[eu].vpc" in listed
    doc = _plan_json(cli, plan, "--var", "us_on=false")
    actions = {c["address"]: c["action"] for c in doc["changes"] if c["action"] != "no-op"}
    assert actions == {
        "module.net[us].vpc": "delete",
        "module.net[us].sg": "delete",
        "module.net[us].module.subnet[a].subnet": "delete",
    }
    plan.write_text(text + "  us: '${modules.net[us].vpc_id}'\n")
    r = cli("validate", str(plan), "--var", "us_on=false")
    assert r.code == 1 and "module.net[us] is disabled" in r.err and "toggle.yaml:13:" in r.err
