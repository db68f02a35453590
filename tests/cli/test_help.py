"""Every command's --help teaches like the top level: no Python types, whole summaries, an example,
the exit codes, and repeatable options that say so."""

from __future__ import annotations

import re
from typing import Any

import pytest

COMMANDS = [
    "validate", "plan", "apply", "destroy", "recover", "drift", "rollback", "output", "graph", "schema",
    "providers", "version", "force-unlock",
    "state list", "state show", "state rm", "state mv", "state import", "state history", "state migrate",
    "state rekey", "policy check", "policy test",
    "release deploy", "release promote", "release approve", "release status", "release history",
    "release rollback", "release reject",
    "sandbox up", "sandbox status", "sandbox env", "sandbox down",
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help_teaches(cli: Any, command: str) -> None:
    r = cli(*command.split(), "--help")
    assert r.code == 0, r.err
    text = r.out
    assert not re.search(r"<[a-z][\w\[\], ]*>", text), text  # <path>, <list[str]>, <int range>
    assert "{" not in text and "}" not in text, text
    assert re.search(r"\n\s*Example:\n\s+(cloudorch |eval \"\$\(cloudorch|CLOUDORCH_ACTOR=\w+ cloudorch )", text), text
    assert re.search(r"\n\s*Exit codes:\n\s+0 \w", text), text
    for line in text.splitlines():
        if re.match(r"\s+--(var|var-file|target|exclude|replace|policy|override|policy-report)\b", line):
            option_help = text[text.index(line) :].split("\n  -", 1)[0]
            assert "Repeatable." in option_help, option_help


@pytest.mark.parametrize("group", ["", "state", "release", "policy", "sandbox"])
def test_summaries_are_whole(cli: Any, group: str) -> None:
    r = cli(*group.split(), "--help")
    listing = r.out.split("Commands:\n", 1)[1]
    for line in listing.splitlines():
        assert not line.rstrip().endswith("..."), line


def test_rollback_help_says_it_reverts_to_a_serial(cli: Any) -> None:
    text = cli("rollback", "--help").out
    assert "Revert state to a serial" in text and "--to SERIAL" in text
