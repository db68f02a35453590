"""The hostile corpus (tests/fixtures/hostile/) through the CLI: each case runs in a subprocess
under a timeout and a 1 GB address-space limit, with a secret in its environment, and must end
with exit 1, a message naming the file and line, no traceback, and the secret nowhere in what it
printed or wrote.

Rego cases run without the address-space limit: rego-cpp's allocator reserves 256 GB of address
space when it loads (README of cloudorch/policy), so no process that loads it can run under
one; the worker bounds each policy's memory itself, which is what those cases check. One case
checks the located error under the limit.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
SECRET = "hunter2-7c1e0b9f-do-not-print"
LIMIT = 1 << 30


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    file: str  # the file the message must name, with a line
    message: str
    code: int = 1
    limited: bool = True


CASES = [
    Case("alias bomb", ("validate", "alias_bomb.yaml"), "alias_bomb.yaml", "aliases expand to more than"),
    Case("merge bomb", ("validate", "merge_bomb.yaml"), "merge_bomb.yaml", "aliases expand to more than"),
    Case("python tag", ("validate", "python_tag.yaml"), "python_tag.yaml", "unsupported YAML tag"),
    Case("custom tag", ("validate", "custom_tag.yaml"), "custom_tag.yaml", "unsupported YAML tag `!vault`"),
    Case("deep nesting", ("validate", "deep_nesting.yaml"), "deep_nesting.yaml", "nested more than 64 levels"),
    Case(
        "var file bomb",
        ("plan", "var_file_plan.yaml", "--var-file", "var_file_bomb.yaml"),
        "var_file_bomb.yaml",
        "aliases expand to more than",
    ),
    Case("huge plan", ("validate", "huge.yaml"), "huge.yaml", "larger than the limit of 10,485,760"),
    Case("wide for_each", ("validate", "wide.yaml"), "wide.yaml", "more than 100,000 resource instances"),
    Case("deep block nesting", ("validate", "deeper.yaml"), "deeper.yaml", "nested more than 64 levels"),
    Case("gate file URL", ("validate", "gate_file_url.yaml"), "gate_file_url.yaml", "is not an http or https URL"),
    Case("gate quote", ("validate", "gate_unmatched_quote.yaml"), "gate_unmatched_quote.yaml", "cannot split"),
    Case(
        "gate reference", ("validate", "gate_unknown_reference.yaml"), "gate_unknown_reference.yaml", "no key 'tag'"
    ),
    Case(
        "policy memory",
        ("plan", "policy_memory_hog.yaml"),
        "memory_hog.rego",
        "exceeded its memory limit of 128 MB",
        limited=False,
    ),
    Case("policy time", ("plan", "policy_slow.yaml"), "slow.rego", "time limit of 2s", limited=False),
    Case("policy network", ("plan", "policy_network.yaml"), "network.rego", "calls `http.send`", limited=False),
    Case("policy env", ("plan", "policy_env_leak.yaml"), "", "", code=0, limited=False),
    Case("policy under a limit", ("plan", "policy_memory_hog.yaml"), "memory_hog.rego", "memory_hog"),
]


def _generate(work: Path) -> None:
    (work / "huge.yaml").write_text("version: 1\nname: huge\nresources: {}\npad: " + "x" * (11 * 2**20) + "\n")
    keys = "".join(f'      - "k{i}"\n' for i in range(100_001))
    (work / "wide.yaml").write_text(
        "version: 1\nname: wide\nresources:\n  w:\n    type: core.null\n    for_each:\n"
        + keys
        + '    properties: {values: {k: "${each.key}"}}\n'
    )
    (work / "deeper.yaml").write_text("version: 1\nname: deep\nx: " + "[" * 5000 + "]" * 5000 + "\n")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _run(work: Path, argv: Sequence[str], *, limited: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDORCH_")}
    env.update(CLOUDORCH_HOSTILE_SECRET=SECRET, HOME=str(work / "home"), CI="true", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *argv],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory if limited else None,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hostile")
    shutil.copytree(HOSTILE, work, dirs_exist_ok=True)
    (work / "home").mkdir()
    _generate(work)
    return work


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_input_fails_cleanly(corpus: Path, case: Case) -> None:
    before = {p for p in corpus.rglob("*")}
    got = _run(corpus, case.argv, limited=case.limited)
    said = got.stdout + got.stderr
    assert got.returncode == case.code, said[-3000:]
    assert "Traceback" not in said and "Internal error" not in said, said[-3000:]
    if case.code == 1:
        assert case.message in said, said[-3000:]
        assert re.search(rf"{re.escape(case.file)}:\d+", got.stderr), got.stderr[-3000:]
    assert SECRET not in said
    for path in corpus.rglob("*"):
        if path.is_file() and path not in before:
            assert SECRET.encode() not in path.read_bytes(), f"the secret reached {path}"
    assert not (corpus / "pwned.txt").exists()
