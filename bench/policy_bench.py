"""Benchmark: policy time for a changeset of 5,000 `core.null` creates against 10 built-in rules
and 10 Rego rules (target, as in bench/README.md: <= 1 s in total on the project's machine).

Run: `.venv/bin/python bench/policy_bench.py [--resources N] [--repeat K] [--breakdown]`. Prints a
table; the exit status is 1 when the median total exceeds the target, so CI can run it as a check.
`--breakdown` also times each step alone on one thread (per group of rules that share an input)
and prints the floor those steps put on the total with this machine's cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudorch.changes import Action, Change, ChangeSet, PropertyDiff
from cloudorch.policy import PolicySet, build_input, load_policies, reach
from cloudorch.policy.rego import _run_query, make_input
from cloudorch.policy.rego_worker import new_interpreter

TARGET_SECONDS = 1.0

REGO_RULES = {
    "versioning": """
deny_versioning contains msg if {
  some c in input.changeset.changes
  c.type == "aws.s3_bucket"
  not c.after.versioning
  msg := sprintf("%s: buckets must be versioned", [c.address])
}""",
    "forbidden_env": """
deny_forbidden_env contains msg if {
  some c in input.changeset.changes
  c.after.values.env == "forbidden"
  msg := sprintf("%s: env forbidden", [c.address])
}""",
    "owner": """
warn_owner contains msg if {
  some c in input.changeset.changes
  c.type == "core.null"
  not c.after.values.owner
  msg := sprintf("%s: no owner value", [c.address])
}""",
    "force_trigger": """
violation_force_trigger contains v if {
  some c in input.changeset.changes
  c.after.triggers.force == true
  v := {"msg": sprintf("%s: forced trigger", [c.address]), "details": {"address": c.address}}
}""",
    "mass_delete": """
deny_mass_delete contains msg if {
  input.changeset.counts.delete > 100
  msg := "more than 100 deletes"
}""",
    "address_style": """
deny_address_style contains msg if {
  some c in input.changeset.changes
  c.action == "create"
  startswith(c.address, "tmp_")
  msg := sprintf("%s: temporary resources are not allowed", [c.address])
}""",
    "fail_flags": """
deny_fail_flags contains msg if {
  some c in input.changeset.changes
  c.after.fail_on_create == true
  msg := sprintf("%s: fail_on_create left on", [c.address])
}""",
    "replace": """
warn_replace contains msg if {
  some c in input.changeset.changes
  c.action == "replace"
  msg := sprintf("%s will be replaced", [c.address])
}""",
    "provider": """
deny_provider contains msg if {
  some c in input.changeset.changes
  not c.provider in {"core", "aws", "gcp", "azure"}
  msg := sprintf("%s: unknown provider %s", [c.address, c.provider])
}""",
    "stage": """
deny_stage contains msg if {
  input.stage == "prod"
  some c in input.changeset.changes
  c.after.values.env == "dev"
  msg := sprintf("%s: dev values in prod", [c.address])
}""",
}

BUILTINS: list[dict[str, Any]] = [
    {"id": "owner-tag", "rule": "required_tags", "level": "advisory", "keys": ["owner"], "match": {"type": "aws.*"}},
    {"id": "eu-only", "rule": "allowed_locations", "level": "mandatory", "locations": ["eu-*", "EU", "westeurope"]},
    {"id": "no-public", "rule": "deny_public_access", "level": "hard"},
    {"id": "types", "rule": "allowed_resource_types", "level": "mandatory", "types": ["core.*", "aws.*", "gcp.*"]},
    {"id": "names", "rule": "naming", "level": "mandatory", "pattern": "[a-z0-9-]+", "property": "name"},
    {"id": "few-deletes", "rule": "max_changes", "level": "mandatory", "max": 50},
    {"id": "few-creates", "rule": "max_changes", "level": "advisory", "limits": {"create": 10000}},
    {
        "id": "window",
        "rule": "change_window",
        "level": "mandatory",
        "timezone": "UTC",
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "hours": "00:00-24:00"}],
    },
    {"id": "keep-db", "rule": "protect", "level": "hard", "addresses": ["*.db", "db"]},
    {"id": "core-types", "rule": "allowed_resource_types", "level": "advisory", "types": ["core.null", "core.file"],
     "match": {"type": "core.*"}},
]


def make_changeset(n: int) -> ChangeSet:
    changes = []
    for i in range(n):
        after = {
            "values": {"index": i, "env": "dev", "owner": "web"},
            "triggers": {"build": str(i)},
            "fail_on_create": False,
            "fail_on_update": False,
            "fail_on_delete": False,
        }
        changes.append(
            Change(
                address=f"node_{i}",
                type="core.null",
                provider="core",
                action=Action.CREATE,
                after=after,
                diff=[PropertyDiff(path=k, after=v) for k, v in after.items()],
            )
        )
    return ChangeSet(plan_name="bench", plan_file="bench.yaml", plan_hash="0", changes=changes)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def breakdown(policies: PolicySet, doc: dict[str, Any], repeat: int) -> tuple[list[tuple[str, float]], float]:
    """Each step of one evaluation alone, on one thread (median seconds), and the floor they put
    on the total: inputs are built one after another (Python holds the GIL), and each group's
    load and queries run on its own interpreters once its input is built."""
    assert policies.rego is not None
    rego = policies.rego
    interp = new_interpreter([(f"m{i}.rego", m.text) for i, m in enumerate(rego.modules)])  # in this process
    groups = reach.plan_groups(doc, rego._own, rego._rule_scans, rego.workers) or [
        reach.Group(rego.projection, tuple(range(len(rego.rules))), tuple(range(rego.workers)))
    ]
    rows: list[tuple[str, float]] = [("built-in rules", statistics.median(
        timed(lambda: policies._run_builtins(doc))[0] for _ in range(repeat)
    ))]
    built = floor = 0.0
    for n, group in enumerate(groups, 1):
        steps: dict[str, list[float]] = {"project": [], "build input": [], "load input": [], "queries": []}
        for _ in range(repeat):
            t, projected = timed(lambda: group.projection.apply(doc))  # noqa: B023 - called at once
            steps["project"].append(t)
            t, rego_input = timed(lambda: make_input(projected))  # noqa: B023
            steps["build input"].append(t)
            steps["load input"].append(timed(lambda: interp.set_input(rego_input))[0])  # noqa: B023
            steps["queries"].append(timed(lambda: [_run_query(interp, rego.rules[i].query) for i in group.rules])[0])  # noqa: B023
        med = {k: statistics.median(v) for k, v in steps.items()}
        label = f"group {n} ({len(group.rules)} rules, {len(group.interpreters)} interpreter(s))"
        rows += [(f"{label}: {k}", v) for k, v in med.items()]
        built += med["project"] + med["build input"]
        floor = max(floor, built + med["load input"] + med["queries"] / len(group.interpreters))
    return rows, floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--breakdown", action="store_true", help="also time each step alone, on one thread")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "policies"
        folder.mkdir()
        for name, body in REGO_RULES.items():
            (folder / f"{name}.rego").write_text(f"package main\n\nimport rego.v1\n{body}\n", encoding="utf-8")
        entries = [*BUILTINS, {"path": "policies", "level": "mandatory"}]
        load_s, policies = timed(lambda: load_policies(entries, base_dir=tmp))
        changeset = make_changeset(args.resources)
        now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

        rows = []
        report = None
        for _ in range(args.repeat):
            input_s, doc = timed(lambda: build_input(changeset, stage="dev", user="bench", now=now))
            cpu0 = time.process_time()
            eval_s, report = timed(lambda: policies.evaluate(doc))  # noqa: B023 - called at once
            rows.append((input_s, eval_s, input_s + eval_s, time.process_time() - cpu0))
        assert report is not None
        steps = breakdown(policies, doc, args.repeat) if args.breakdown and policies.rego else None

    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    n_builtin = len(policies.builtins)
    n_rego = len(policies.rego.rules) if policies.rego else 0
    print(f"policy benchmark: {args.resources} core.null creates x {n_builtin} built-in + {n_rego} Rego rules")
    print(f"(median of {args.repeat} runs; Rego on {policies.rego.workers if policies.rego else 0} interpreter(s))")
    print()
    print(f"{'step':<34}{'seconds':>10}")
    print("-" * 44)
    print(f"{'load + compile (once per command)':<34}{load_s:>10.3f}")
    print(f"{'build input document':<34}{med[0]:>10.3f}")
    print(f"{'evaluate (built-in + Rego)':<34}{med[1]:>10.3f}")
    print(f"{'total per check':<34}{med[2]:>10.3f}")
    print(f"{'  (CPU seconds of evaluate)':<34}{med[3]:>10.3f}")
    print("-" * 44)
    print(f"violations: {len(report.violations)}   blocking: {len(report.blocking())}")
    if steps:
        rows_b, floor = steps
        print()
        print(f"{'each step alone, one thread':<58}{'seconds':>10}")
        print("-" * 68)
        for name, secs in rows_b:
            print(f"{name:<58}{secs:>10.3f}")
        print("-" * 68)
        print(f"{'floor: inputs built in turn, each group then on its own':<58}{floor:>10.3f}")
    ok = med[2] <= TARGET_SECONDS
    print(f"target <= {TARGET_SECONDS:.1f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
