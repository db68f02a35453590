"""`cloudorch.run.apply` on the `core` provider: a denial found mid-apply is a value on the result,
and the caller's interrupt is armed only while cloud work runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cloudorch import api
from cloudorch.errors import Interrupted


def test_policy_denial_during_apply_is_returned_after_state_is_saved(fixture_plan: Any) -> None:
    plan = fixture_plan("policy_mid_apply.yaml")
    result = api.apply(api.RunOptions(plan_file=plan))
    assert result is not None and result.denied is not None
    assert result.denied.exit_code == 3 and "kept-files" in result.denied.message
    assert not result.ok and "late" in result.failed
    assert sorted(r.address for r in api.state_list(api.RunOptions(plan_file=plan))) == ["config", "first"]


class CountingInterrupt(api.Interrupt):
    def __init__(self, fire_on_arm: bool = False) -> None:
        super().__init__()
        self.armed_times = 0
        self.fire_on_arm = fire_on_arm

    @contextmanager
    def armed(self) -> Iterator[None]:
        self.armed_times += 1
        if self.fire_on_arm:
            self.fire()
        yield


def test_interrupt_is_armed_only_around_the_apply(fixture_plan: Any) -> None:
    plan = fixture_plan("lifecycle.yaml")
    intr = CountingInterrupt()
    planned: list[int] = []
    result = api.apply(
        api.RunOptions(plan_file=plan), interrupt=intr, on_plan=lambda cs: planned.append(intr.armed_times)
    )
    assert result is not None and result.ok
    assert planned == [0] and intr.armed_times == 1  # not while planning; once while applying
    again = api.apply(api.RunOptions(plan_file=plan), interrupt=intr)
    assert again is not None and not again.changeset.has_changes and intr.armed_times == 1  # nothing to run


def test_fired_interrupt_starts_nothing_and_raises_interrupted(fixture_plan: Any) -> None:
    plan = fixture_plan("lifecycle.yaml")
    with pytest.raises(Interrupted, match="0 operation"):
        api.apply(api.RunOptions(plan_file=plan), interrupt=CountingInterrupt(fire_on_arm=True))
    assert api.state_list(api.RunOptions(plan_file=plan)) == []
    assert api.apply(api.RunOptions(plan_file=plan)) is not None  # the next apply finishes the job


def test_declining_applies_nothing(fixture_plan: Any) -> None:
    plan = fixture_plan("lifecycle.yaml")
    assert api.apply(api.RunOptions(plan_file=plan), confirm=lambda cs: False) is None
    assert api.state_list(api.RunOptions(plan_file=plan)) == []
