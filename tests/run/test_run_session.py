"""`cloudorch.run.session`: a session holds the state lock until it closes; a workspace does not lock."""

from __future__ import annotations

from typing import Any

import pytest

from cloudorch import api
from cloudorch.errors import StateLockedError
from cloudorch.run.session import locked, session, state_key, workspace


def test_session_holds_the_lock_until_it_closes(fixture_plan: Any) -> None:
    opts = api.RunOptions(plan_file=fixture_plan("lifecycle.yaml"))
    with session(opts, fold=False) as sess:
        assert sess.lock is not None and sess.state.serial == 0
        assert sess.state.state_key == state_key(sess.loaded.plan, opts) == "lifecycle"
        with pytest.raises(StateLockedError), session(opts, fold=False):
            pass
    with session(opts, fold=False) as again:  # released on exit
        assert again.lock is not None


def test_workspace_reads_without_locking(fixture_plan: Any) -> None:
    opts = api.RunOptions(plan_file=fixture_plan("lifecycle.yaml"))
    with workspace(opts) as ws, locked(ws, fold=True) as holder, locked(ws, fold=False, lock=False) as reader:
        assert holder.lock is not None
        assert reader.lock is None and reader.recovered is None
        assert {i.name for i in ws.loaded.instances} >= {"config", "note", "pause"}


def test_a_plan_with_stages_needs_a_stage(fixture_plan: Any) -> None:
    from cloudorch.errors import ConfigError

    opts = api.RunOptions(plan_file=fixture_plan("release_one_session.yaml"))
    with pytest.raises(ConfigError, match="say which one"), session(opts, fold=False):
        pass
    loaded = api.validate(opts)  # validate sees every stage at once instead
    assert sorted(i.address for i in loaded.instances) == ["dev.build_info", "prod.build_info"]
