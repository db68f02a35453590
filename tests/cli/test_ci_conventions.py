"""CI conventions: CLOUDORCH_* variables stand in for global flags; CI=true never prompts and
prints no colour unless forced. Run on a pseudo-terminal where a terminal is what matters."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def on_terminal(args: list[str], cwd: Path, **env: str) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; answer any prompt with 'no'."""
    master, slave = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI", "FORCE_COLOR")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudorch", *args],
        stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env={**base, "TERM": "xterm-256color", **env},
    )  # fmt: skip
    os.close(slave)
    os.write(master, b"no\n")
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def coloured(text: str) -> bool:
    """Holds a foreground colour escape (bold or dim alone is not colour)."""
    return re.search(r"\x1b\[[0-9;]*\b(3[0-8]|9[0-7])(;[0-9;]*)?m", text) is not None


def test_parallelism_and_state_dir_come_from_the_environment(
    cli: Any, fixture_plan: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = fixture_plan("lifecycle.yaml")
    monkeypatch.setenv("CLOUDORCH_STATE_DIR", str(tmp_path / "elsewhere"))
    assert cli("apply", str(plan), "--auto-approve").code == 0
    assert (tmp_path / "elsewhere" / "state" / "lifecycle.json").exists()
    assert not (tmp_path / ".cloudorch" / "state").exists()
    monkeypatch.setenv("CLOUDORCH_PARALLELISM", "0")
    refused = cli("plan", str(plan))
    assert refused.code == 1  # the variable is read, and validated like the flag
    assert cli("plan", str(plan), "--parallelism", "2").code == 0  # the flag wins


def test_ci_true_never_prompts_even_on_a_terminal(fixture_plan: Any, tmp_path: Path) -> None:
    plan = fixture_plan("lifecycle.yaml")
    code, text = on_terminal(["apply", str(plan)], tmp_path, CI="true")
    assert code == 1
    assert "CI=true never prompts" in text and "Enter a value" not in text
    # without CI the same terminal gets the question (answered 'no': nothing changes)
    code, text = on_terminal(["apply", str(plan)], tmp_path)
    assert "Enter a value" in text and code == 1
    assert not (tmp_path / ".cloudorch" / "state" / "lifecycle.json").exists()


def test_ci_true_means_no_colour_unless_forced(fixture_plan: Any, tmp_path: Path) -> None:
    plan = str(fixture_plan("lifecycle.yaml"))
    _, terminal = on_terminal(["plan", plan], tmp_path)
    _, ci = on_terminal(["plan", plan], tmp_path, CI="true")
    _, forced = on_terminal(["plan", plan], tmp_path, CI="true", FORCE_COLOR="1")
    assert coloured(terminal)
    assert "\x1b[" not in ci and "will be created" in ci  # a CI log gets no escape codes at all
    assert coloured(forced)
    _, env_no_color = on_terminal(["plan", plan], tmp_path, CLOUDORCH_NO_COLOR="1")
    assert not coloured(env_no_color) and "will be created" in env_no_color


def test_help_documents_the_variables(cli: Any) -> None:
    text = cli("--help").out
    for name in ("CLOUDORCH_PARALLELISM", "CLOUDORCH_BACKEND", "CLOUDORCH_STATE_DIR", "CLOUDORCH_LOCK_TIMEOUT",
                 "CLOUDORCH_NO_COLOR", "CLOUDORCH_SANDBOX", "CI=true", "--install-completion"):  # fmt: skip
        assert name in text
