"""Policy commands: judge a plan's changes without applying, and run Rego unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cloudorch.errors import ConfigError
from cloudorch.run.options import RunOptions
from cloudorch.run.plan import PolicyVerdict, plan_in
from cloudorch.run.session import session

if TYPE_CHECKING:
    from cloudorch.policy.model import RegoTestResult


def policy_check(opts: RunOptions) -> PolicyVerdict:
    """Plan and evaluate the plan's policies (and --policy ones) without applying anything."""
    with session(opts, fold=False) as sess:
        verdict = plan_in(sess, opts).verdict
        if verdict is None:
            raise ConfigError(
                f"{sess.loaded.plan.path} declares no policies",
                hint="add a `policies:` list to the plan file, or pass --policy PATH",
            )
        return verdict


def policy_test(path: Path) -> list[RegoTestResult]:
    """Run the Rego unit tests (`test_*` rules) under a file or folder."""
    from cloudorch.policy import run_rego_tests

    return run_rego_tests(path)
