"""`policy check` (judge a plan's changes without applying) and `policy test` (Rego unit tests)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudorch.cli.common import deny, policy_app
from cloudorch.cli.options import EXITS, JsonOpt, plan_command, simple_command
from cloudorch.cli.output import Output
from cloudorch.errors import ExitCode

if TYPE_CHECKING:
    from cloudorch.api import RunOptions


@plan_command(
    policy_app,
    "check",
    command="policy check",
    uses="vars state stage sandbox lock policy json",
    summary="Plan, then judge the changes by the policies; apply nothing.",
    example="cloudorch policy check plans/quickstart.yaml --policy-report sarif=policy.sarif",
    exits=f"0 passed (warnings allowed), 3 a policy blocks (after the report is shown), {EXITS}",
)
def check(opts: RunOptions, out: Output) -> int:
    """Plan, then evaluate the policies on the changes without applying. Exit 3 when one blocks."""
    from cloudorch import api

    verdict = api.policy_check(opts)
    if out.json_mode:
        out.document(verdict.report.to_json())
    else:
        out.plain(verdict.report.to_text())
    deny(verdict.denial(dict(opts.overrides)))
    return 0


@simple_command(
    policy_app,
    "test",
    summary="Run Rego unit tests (test_* rules).",
    example="cloudorch policy test policies/",
    exits="0 every test passed, 1 a test failed or a file is invalid",
)
def test(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A .rego file or a folder of them.", show_default=False)],
    json_: JsonOpt = False,
) -> int:
    """Run Rego unit tests (`test_*` rules; `todo_test_*` are skipped). Exit 1 if any fails."""
    from cloudorch import api

    out = Output.configure(json_mode=json_)
    results = api.policy_test(path)
    failed = [r for r in results if not r.passed and not r.skipped]
    if json_:
        out.document({"passed": not failed, "tests": [asdict(r) for r in results]})
    else:
        for r in results:
            status = "SKIP" if r.skipped else ("PASS" if r.passed else "FAIL")
            where = f"{r.file}:{r.line}" if r.line else r.file
            out.plain(f"{status}  {r.name}  ({where})" + (f": {r.error}" if r.error else ""))
        passed = sum(1 for r in results if r.passed)
        skipped = sum(1 for r in results if r.skipped)
        out.plain(f"{passed} passed, {len(failed)} failed" + (f", {skipped} skipped" if skipped else ""))
    return int(ExitCode.ERROR) if failed else 0
