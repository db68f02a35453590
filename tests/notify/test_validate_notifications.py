"""`validate` checks the plan's `notifications:` with file and line; URLs are masked in errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BASE = """version: 1
name: checked
resources:
  a: {type: core.null}
notifications:
"""


def _plan(tmp_path: Path, entries: str) -> Path:
    plan = tmp_path / "checked.yaml"
    plan.write_text(BASE + entries)
    return plan


def test_a_valid_list_validates(cli: Any, tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        '  - {url: "https://hooks.example.com/x", on: [apply.failed, drift.detected], secret_env: HOOK}\n'
        '  - {url: "json://127.0.0.1:9/x", on: [release.promoted]}\n',
    )
    r = cli("validate", str(plan))
    assert r.code == 0, r.err


def test_an_unknown_event_is_located(cli: Any, tmp_path: Path) -> None:
    plan = _plan(tmp_path, '  - {url: "https://hooks.example.com/x", on: [apply.failled]}\n')
    r = cli("validate", str(plan), "--json")
    assert r.code == 1
    err = r.json()
    assert "unknown event `apply.failled`" in err["message"] and "apply.failed" in err["hint"]
    assert err["location"]["line"] == 6


def test_apprise_scheme_without_apprise_is_a_clear_error(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if `cloudorch[notify]` were not installed
    plan = _plan(tmp_path, '  - {url: "slack://TokenA/TokenB/TokenC/#ops", on: [apply.failed]}\n')
    r = cli("validate", str(plan), "--json")
    assert r.code == 1
    err = r.json()
    assert "needs apprise" in err["message"] and "cloudorch[notify]" in err["hint"]
    assert err["location"]["line"] == 6
    assert "TokenA" not in r.out and "slack://***" in err["message"]
    # a plain https webhook needs nothing more
    https = _plan(tmp_path, '  - {url: "https://hooks.example.com/x"}\n')
    assert cli("validate", str(https)).code == 0


def test_plain_http_only_to_this_machine(cli: Any, tmp_path: Path) -> None:
    plan = _plan(tmp_path, '  - {url: "http://hooks.example.com/secret-path-123"}\n')
    r = cli("validate", str(plan), "--json")
    assert r.code == 1
    assert "over https" in r.json()["message"] and "secret-path-123" not in r.out
    r = cli("validate", str(plan), "--notify", "ftp://nowhere")
    assert r.code == 1


def test_unknown_stage_and_key(cli: Any, tmp_path: Path) -> None:
    plan = _plan(tmp_path, '  - {url: "https://h.example.com/x", stage: [prod]}\n')
    r = cli("validate", str(plan), "--json")
    assert r.code == 1 and "unknown key `stage`" in r.json()["message"]
    assert "stages" in r.json()["hint"]
    plan = _plan(tmp_path, '  - {url: "https://h.example.com/x", stages: [prod]}\n')
    r = cli("validate", str(plan), "--json")
    assert r.code == 1 and "no stage `prod`" in r.json()["message"]


def test_schema_lists_the_events(cli: Any) -> None:
    r = cli("schema")
    import json

    schema = json.loads(r.out)
    entry = schema["properties"]["notifications"]["anyOf"][0]["items"]
    assert "apply.failed" in entry["properties"]["on"]["items"]["enum"]
