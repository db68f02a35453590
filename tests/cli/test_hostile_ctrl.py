"""Control characters in values never reach a terminal or a CI log raw (tests/fixtures/hostile/ctrl_*).

A value can carry a line break followed by a GitHub workflow command (`::error::...`), an ESC
sequence or a carriage return. Every command's text shows them escaped (`\\n`, `\\x1b`); JSON
stays valid JSON that decodes to the value as given; drift's Markdown flattens them and escapes
`<` and `>`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from cloudorch import markdown

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
LABEL = "x\n::error::from-var\x1b[31m\r"
#: every control character but the line breaks of the layout itself
RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copy(HOSTILE / name, dest)
    return dest


def _assert_safe(*texts: str) -> None:
    for text in texts:
        assert not RAW.search(text), repr(text)
        for line in text.splitlines():
            assert not line.lstrip().startswith("::"), repr(line)


def test_an_invalid_name_is_refused_with_the_name_escaped(cli: Any, tmp_path: Path) -> None:
    plan = _copy(tmp_path, "ctrl_resource_name.yaml")
    r = cli("validate", str(plan))
    assert r.code == 1
    _assert_safe(r.out, r.err)
    assert "note\\n::error::injected-key" in r.err
    assert "ctrl_resource_name.yaml:7" in r.err


def test_plan_apply_output_and_state_show_values_escaped(cli: Any, tmp_path: Path) -> None:
    plan = _copy(tmp_path, "ctrl_values.yaml")
    var = f"label={LABEL}"
    r = cli("plan", str(plan), "--var", var)
    assert r.code == 0, r.err
    _assert_safe(r.out, r.err)
    assert "note[k\\n::error::injected-key\\x1b]" in r.out
    assert "\\u001b[31m" in r.out  # a JSON-rendered property: JSON's own escape

    r = cli("apply", "--auto-approve", str(plan), "--var", var)
    assert r.code == 0, r.err
    _assert_safe(r.out, r.err)
    assert "k\\n::error::injected-key\\x1b" in r.err  # the progress line

    for args in (("output", str(plan)), ("output", str(plan), "label"), ("state", "list", str(plan))):
        r = cli(*args, "--var", var) if args[0] == "output" else cli(*args)
        assert r.code == 0, (args, r.err)
        _assert_safe(r.out, r.err)


def test_json_stays_valid_and_decodes_to_the_value(cli: Any, tmp_path: Path) -> None:
    plan = _copy(tmp_path, "ctrl_values.yaml")
    r = cli("plan", str(plan), "--var", f"label={LABEL}", "--json")
    assert r.code == 0, r.err
    _assert_safe(r.out, r.err)
    doc = json.loads(r.out)
    creates = {c["address"]: c for c in doc["changes"]}
    assert "note[k\n::error::injected-key\x1b]" in creates
    assert all(c["after"]["values"]["label"] == LABEL for c in creates.values())


def test_an_error_message_built_from_a_value_is_escaped(cli: Any, tmp_path: Path) -> None:
    plan = _copy(tmp_path, "ctrl_values.yaml")
    r = cli("plan", str(plan), "--var", "keys=not\n::error::a-list\x1b[2J")
    assert r.code == 1
    _assert_safe(r.out, r.err)
    r = cli("plan", str(tmp_path / "no\n::error::such\x1b[2J.yaml"))
    assert r.code == 1
    _assert_safe(r.out, r.err)


def test_drift_text_and_markdown_escape_what_the_file_holds(cli: Any, tmp_path: Path) -> None:
    plan = _copy(tmp_path, "ctrl_drift.yaml")
    assert cli("apply", "--auto-approve", str(plan)).code == 0
    (tmp_path / "notes.txt").write_text("edited\n::warning::from-disk\x1b]0;title\x07</details><script>")
    r = cli("drift", str(plan))
    assert r.code == 2, r.err
    _assert_safe(r.out, r.err)
    assert "\\u001b]0;title\\u0007" in r.out  # a JSON-rendered value
    r = cli("drift", str(plan), "--markdown")
    assert r.code == 2, r.err
    _assert_safe(r.out, r.err)
    assert "<script>" not in r.out and "</details><" not in r.out.replace("</details>\n", "")


def test_the_escapers() -> None:
    assert markdown.safe("a\nb\r\t\x1b[0m\x7f\x9b\u2028") == "a\\nb\\r\\t\\x1b[0m\\x7f\\x9b\\u2028"
    assert markdown.safe_lines("one\n  two\n::error::x\n  ::warning::y\x1b") == (
        "one\n  two\\n::error::x\\n  ::warning::y\\x1b"
    )
    assert markdown.safe_line("::error::x") == "\\::error::x"
    assert markdown.text("a\x9bb\u2028c") == "a b c"
