"""`cloudorch ui` in a real Chromium: every page shows what state and the release ledger hold,
links lead from the pipeline to a stack and its resources, hostile names stay text, a token is
enforced, and a running apply's page follows it live."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudorch.cli import main
from tests.ui.conftest import Served

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "<img src=x onerror=alert(1)>"


def _run(monkeypatch: pytest.MonkeyPatch, *args: str, at: str | None = None, actor: str | None = None) -> None:
    if at:
        monkeypatch.setenv("CLOUDORCH_NOW", at)
    if actor:
        monkeypatch.setenv("CLOUDORCH_ACTOR", actor)
    assert main(list(args)) == 0, args


@pytest.fixture
def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[dict[str, Any]]:
    """release-demo deployed to dev and staging; a fleet of 20 stacks, one with hostile names and a secret."""
    root = tmp_path / "world"
    (root / "fleet").mkdir(parents=True)
    shutil.copy(REPO / "plans" / "release-demo.yaml", root / "release-demo.yaml")
    demo = str(root / "release-demo.yaml")
    _run(monkeypatch, "release", "deploy", demo, "--stage", "dev", "--version", "1.0.0", "--auto-approve",
         at="2026-11-23T10:00:00Z")
    _run(monkeypatch, "release", "promote", demo, "--to", "staging", "--auto-approve", at="2026-11-23T10:01:00Z")
    monkeypatch.delenv("CLOUDORCH_NOW")
    for i in range(19):
        (root / "fleet" / f"s{i:02d}.yaml").write_text(
            f"version: 1\nname: s{i:02d}\nresources:\n  a: {{type: core.null, properties: {{values: {{n: {i}}}}}}}\n"
            f"  b: {{type: core.null, depends_on: [a], properties: {{values: {{a: '${{resources.a.id}}'}}}}}}\n"
        )
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    (root / "fleet" / "hostile.yaml").write_text(
        "version: 1\nname: hostile\nvariables:\n  token: {type: string, sensitive: true}\nresources:\n"
        f"  evil:\n    type: core.null\n    for_each: ['{HOSTILE}', ok]\n"
        "    properties: {values: {token: '${var.token}'}}\n"
        "  label: {type: core.null, properties: {values: {tag: '<script>alert(2)</script>'}}}\n"
    )
    assert main(["apply", str(root / "fleet" / "hostile.yaml"), "--auto-approve", "--var", f"token={secret}"]) == 0
    assert main(["fleet", "apply", str(root / "fleet"), "--exclude-stack", "hostile", "--auto-approve"]) == 0
    capsys.readouterr()
    yield {"root": root, "secret": secret}


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_pages_show_state_and_ledger_and_link_through(
    serve: Callable[..., Served], page: Any, world: dict[str, Any]
) -> None:
    root = world["root"]
    s = serve([root / "release-demo.yaml", root / "fleet"])
    page.goto(s.url + "/")
    rows = page.locator("#stacks tbody tr")
    assert rows.count() == 23  # demo in 3 stages + 20 fleet stacks
    dev = page.locator('tr[data-stack="demo.dev"]')
    assert "1.0.0" in dev.inner_text() and "serial" not in dev.inner_text()
    assert "never applied" in page.locator('tr[data-stack="demo.prod"]').inner_text()
    page.screenshot(path=str(page.shots / "overview.png"), full_page=True)

    dev.get_by_role("link", name="pipeline").click()
    page.wait_for_url("**/pipeline/demo.dev")
    stages = page.locator(".stage")
    assert stages.count() == 3
    assert "1.0.0" in page.locator('.stage[data-stage="dev"]').inner_text()
    assert "1.0.0" in page.locator('.stage[data-stage="staging"]').inner_text()
    prod_next = page.locator('.stage[data-stage="staging"] .next').inner_text()
    assert "approval" in prod_next and "cloudorch release approve" in prod_next  # the command to copy
    assert "nothing deployed" in page.locator('.stage[data-stage="prod"]').inner_text()
    page.screenshot(path=str(page.shots / "pipeline.png"), full_page=True)

    # pipeline -> the stage's last run -> a resource it changed
    page.locator('.stage[data-stage="staging"] .last-run a').click()
    page.wait_for_url("**/runs/demo.staging/*")
    assert "release promote" in page.locator("main").inner_text()
    changed = page.locator("#run-changed a").first
    address = changed.get_attribute("data-address")
    page.screenshot(path=str(page.shots / "run.png"), full_page=True)
    changed.click()
    page.wait_for_url("**/stack/demo.staging#r-*")
    assert page.locator(f'#resources tr[data-address="{address}"]').count() == 1

    page.goto(s.url + "/pipeline/demo.dev")
    page.locator('.stage[data-stage="staging"] h2 a').click()
    page.wait_for_url("**/stack/demo.staging")
    resources = page.locator("#resources tbody tr")
    assert resources.count() >= 1
    assert "staging" in page.locator("#resources").inner_text()
    page.screenshot(path=str(page.shots / "stack.png"), full_page=True)

    page.goto(s.url + "/graph/demo.staging")
    node = page.locator('svg a[data-address^="staging."]').first
    address = node.get_attribute("data-address")
    assert address and address.startswith("staging.")
    node.click()
    page.wait_for_url("**/stack/demo.staging#r-*")
    assert page.locator(f'#resources tr[data-address="{address.split(".", 1)[1]}"]').count() == 1
    page.goto(s.url + "/graph/demo.staging")
    page.screenshot(path=str(page.shots / "graph.png"), full_page=True)

    # the history of a stack with two serials, diffed in the page
    page.goto(s.url + "/stack/demo.dev")
    assert page.locator("#history tbody tr").count() >= 1

    # the runs page: every recorded run, filtered by stack
    page.goto(s.url + "/runs?stack=demo.staging")
    rows = page.locator("#runs tbody tr[data-run]")
    assert rows.count() >= 1 and "release promote" in rows.first.inner_text()
    page.screenshot(path=str(page.shots / "runs.png"), full_page=True)
    status, body = _get(s.url + "/api/runs?stack=s03")
    commands = {r["command"] for r in json.loads(body)["runs"]}
    assert status == 200 and "apply" in commands, commands


def test_hostile_names_are_text_and_secrets_never_leave(
    serve: Callable[..., Served], page: Any, world: dict[str, Any]
) -> None:
    root, secret = world["root"], world["secret"]
    s = serve([root / "fleet"])
    page.goto(s.url + "/stack/hostile")
    table = page.locator("#resources")
    assert HOSTILE in table.inner_text()  # shown as written
    assert "<script>alert(2)</script>" in table.inner_text()
    assert table.locator("img").count() == 0 and table.locator("script").count() == 0
    assert "(sensitive)" in table.inner_text() and secret not in page.content()
    page.goto(s.url + "/graph/hostile")
    assert page.locator("svg img").count() == 0
    page.screenshot(path=str(page.shots / "hostile.png"), full_page=True)
    for path in ("/", "/api/overview", "/stack/hostile", "/api/stack/hostile", "/graph/hostile", "/api/graph/hostile",
                 "/api/stack/hostile/live"):
        status, body = _get(s.url + path)
        assert status == 200 and secret not in body, path
    status, headers_page = 0, urllib.request.urlopen(s.url + "/", timeout=30)
    csp = headers_page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_a_token_is_required_when_set_and_a_wide_bind_needs_one(
    serve: Callable[..., Served], page: Any, world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root = world["root"]
    token = uuid.uuid4().hex
    s = serve([root / "fleet"], token=token)
    assert _get(s.url + "/api/overview")[0] == 401
    assert _get(s.url + "/", {"Authorization": "Bearer wrong"})[0] == 401
    status, body = _get(s.url + "/api/overview", {"Authorization": f"Bearer {token}"})
    assert status == 200 and len(json.loads(body)["stacks"]) == 20
    page.goto(s.url + "/")
    assert "401" in page.content()
    page.goto(f"{s.url}/login?token={token}")  # sets an HttpOnly cookie, then the pages open
    assert page.locator("#stacks tbody tr").count() == 20

    capsys.readouterr()
    code = main(["ui", str(root / "fleet"), "--host", "0.0.0.0", "--port", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "--token" in err


def test_a_running_apply_shows_live(serve: Callable[..., Served], page: Any, tmp_path: Path) -> None:
    plan = tmp_path / "live" / "slow.yaml"
    plan.parent.mkdir()
    steps = "\n".join(
        f"  w{i}: {{type: core.wait, {'depends_on: [w' + str(i - 1) + '], ' if i else ''}properties: {{seconds: 0.6}}}}"
        for i in range(6)
    )
    plan.write_text(f"version: 1\nname: slow\nresources:\n{steps}\n")
    s = serve([plan])
    page.goto(s.url + "/stack/slow")
    assert page.locator('#live [data-running="false"]').count() == 1
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        page.locator('#live [data-running="true"]').wait_for(timeout=20000)
        page.locator("#live li.op.done").first.wait_for(timeout=20000)  # an operation finished, shown live
        seen = page.locator("#live li.op.done").count()
        assert 1 <= seen < 6
        page.screenshot(path=str(page.shots / "live.png"), full_page=True)
        page.locator('#live [data-running="false"]').wait_for(timeout=30000)
    finally:
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    page.reload()
    assert page.locator("#resources tbody tr").count() == 6
