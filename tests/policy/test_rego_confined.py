"""Rego policies run confined: no environment, bounded time and memory, no unavailable builtins.

Each case is a policy someone hostile could write (or a plan that pushes a trusted policy over
its limits); none of them may pass silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.policy import PolicyLoadError, build_input, load_policies, run_rego_tests

from .conftest import NOON, change, changeset

SECRET = "s3cr3t-do-not-leak-7f1c"


def _policy(tmp_path: Path, body: str, name: str = "p.rego") -> Path:
    path = tmp_path / name
    path.write_text("package main\nimport rego.v1\n" + body)
    return path


def test_opa_runtime_shows_no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYSECRET", SECRET)
    _policy(
        tmp_path,
        'deny contains sprintf("env %v", [opa.runtime().env]) if true\n'
        'deny contains "has secret" if { opa.runtime().env.MYSECRET }\n',
    )
    policies = load_policies([{"path": "p.rego"}], base_dir=tmp_path)
    report = policies.evaluate(build_input(changeset(change("b", after={})), now=NOON))
    messages = [v.message for v in report.violations]
    assert len(messages) == 1 and messages[0].startswith("env ")
    assert SECRET not in messages[0] and "MYSECRET" not in messages[0]


def test_policy_tests_see_no_environment_either(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYSECRET", SECRET)
    _policy(tmp_path, "test_no_env if { not opa.runtime().env.MYSECRET }\n", "p_test.rego")
    (result,) = run_rego_tests(tmp_path)
    assert result.passed, result


def test_memory_limit_is_an_error_naming_the_policy(tmp_path: Path) -> None:
    # depends on the input, so it runs at evaluation, not when the policy is loaded
    _policy(
        tmp_path,
        'deny contains "big" if {\n  some c in input.changeset.changes\n'
        "  count(numbers.range(1, c.after.n)) < 0\n}\n",
        "hog.rego",
    )
    policies = load_policies([{"path": "hog.rego", "max_memory_mb": 64}], base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"policy `hog` .* exceeded its memory limit of 64 MB") as info:
        policies.evaluate(build_input(changeset(change("b", after={"n": 30_000_000})), now=NOON))
    assert info.value.location is not None and info.value.location.file.endswith("hog.rego")
    # the engine starts a new worker afterwards: a small input evaluates normally
    assert policies.evaluate(build_input(changeset(change("b", after={"n": 10})), now=NOON)).violations == []


def test_time_limit_is_an_error_naming_the_policy(tmp_path: Path) -> None:
    _policy(
        tmp_path,
        'deny contains "never" if {\n  some i in numbers.range(1, 3000)\n  some j in numbers.range(1, 3000)\n'
        "  i * j == -1\n}\n",
        "slow.rego",
    )
    with pytest.raises(ConfigError, match=r"policy `slow` .* ran longer than its time limit of 0.3s") as info:
        load_policies([{"path": "slow.rego", "timeout": "300ms"}], base_dir=tmp_path)
    assert info.value.hint is not None and "timeout:" in info.value.hint


def test_a_builtin_that_cannot_run_is_refused_at_load(tmp_path: Path) -> None:
    _policy(
        tmp_path,
        "# http.send( in a comment is fine\n"
        'deny contains "down" if {\n'
        '  not http.send({"method": "get", "url": "http://127.0.0.1:1/"}).status_code == 200\n}\n',
        "net.rego",
    )
    with pytest.raises(PolicyLoadError, match=r"calls `http\.send`") as info:
        load_policies([{"path": "net.rego"}], base_dir=tmp_path)
    assert info.value.location is not None and info.value.location.line == 5


def test_imported_packages_are_not_taken_for_builtins(tmp_path: Path) -> None:
    folder = tmp_path / "pol"
    folder.mkdir()
    (folder / "lib.rego").write_text("package lib.util\nimport rego.v1\nbad(x) if x == 1\n")
    _policy(
        folder,
        'import data.lib.util\ndeny contains "one" if {\n'
        "  some c in input.changeset.changes\n  util.bad(c.after.one)\n}\n",
    )
    policies = load_policies([{"path": "pol"}], base_dir=tmp_path)
    doc = build_input(changeset(change("b", after={"one": 1})), now=NOON)
    assert [v.message for v in policies.evaluate(doc).violations] == ["one"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"timeout": "soon"}, "not a positive duration"),
        ({"timeout": 0}, "not a positive duration"),
        ({"max_memory_mb": "lots"}, "whole number of megabytes"),
        ({"max_memory_mb": 1}, "whole number of megabytes"),
    ],
)
def test_bad_limits_are_load_errors(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    _policy(tmp_path, 'deny contains "x" if false\n')
    with pytest.raises(PolicyLoadError, match=message):
        load_policies([{"path": "p.rego", **entry}], base_dir=tmp_path)


def test_a_rule_file_takes_the_bounded_yaml_loader(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("- !!python/object/apply:os.system [ls]\n")
    with pytest.raises(PolicyLoadError, match="unsupported YAML tag") as info:
        load_policies([{"path": "rules.yaml"}], base_dir=tmp_path)
    assert info.value.location is not None and info.value.location.line == 1
