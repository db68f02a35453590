"""Plain progress lines (off a terminal) are written in batches: every line still appears, in
the order the operations finished, before any message that follows them and by the end of the
apply, whichever thread finished the operation."""

from __future__ import annotations

import threading

import pytest

from cloudorch.changes import Action, Change
from cloudorch.cli.output import Output
from cloudorch.cli.render import ProgressObserver


def _change(address: str) -> Change:
    return Change(address=address, type="core.null", provider="core", action=Action.CREATE, after={})


def test_lines_come_in_order_before_a_message_and_all_by_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output(color=False)
    assert not out.interactive  # captured stderr is no terminal
    names = [f"r{i:03d}" for i in range(200)]
    with ProgressObserver(out, len(names)) as progress:
        for name in names[:100]:
            progress.op_started(_change(name))
            progress.op_finished(_change(name), 0.0)
        progress.message("half way")
        first = capsys.readouterr().err.splitlines()
        # 20 threads finish the rest at once
        barrier = threading.Barrier(20)

        def work(chunk: list[str]) -> None:
            barrier.wait()
            for name in chunk:
                progress.op_finished(_change(name), 0.0)

        threads = [threading.Thread(target=work, args=(names[100 + i * 5 : 105 + i * 5],)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    rest = capsys.readouterr().err.splitlines()
    assert first == [f"{n}: created (0.0s) [{i + 1}/200]" for i, n in enumerate(names[:100])] + ["half way"]
    assert [line.rsplit("[", 1)[1] for line in rest] == [f"{i}/200]" for i in range(101, 201)]
    assert sorted(line.split(":")[0] for line in rest) == names[100:]


def test_a_failure_is_shown_at_once_after_the_lines_before_it(capsys: pytest.CaptureFixture[str]) -> None:
    progress = ProgressObserver(Output(color=False), 2)
    with progress:
        progress.op_finished(_change("a"), 0.0)
        progress.op_failed(_change("b"), RuntimeError("boom"))
        assert capsys.readouterr().err.splitlines() == ["a: created (0.0s) [1/2]", "b: create failed: boom"]
