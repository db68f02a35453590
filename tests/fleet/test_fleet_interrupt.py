"""The first interrupt starts no new stack and lets the running ones finish; the rest are reported
as interrupted (exit 130), and their state is untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudorch import api


def test_the_first_interrupt_starts_nothing_new(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    root.mkdir()
    for i in range(4):
        (root / f"w{i}.yaml").write_text(
            f"version: 1\nname: w{i}\nresources:\n  a: {{type: core.wait, properties: {{seconds: 0.5}}}}\n"
        )
    intr = api.Interrupt()
    started: list[str] = []

    def on_event(event: str, name: str, result: Any) -> None:
        if event == "started":
            started.append(name)
            intr.fire()  # Ctrl-C as soon as the first stack starts

    result = api.fleet_run(api.fleet_discover([root]), "apply", api.fleet_executor("local", workers=1),
                           on_event=on_event, interrupt=intr)
    status = {r.name: r.status for r in result.results}
    assert started == ["w0"]
    assert status == {"w0": "ok", "w1": "interrupted", "w2": "interrupted", "w3": "interrupted"}
    assert result.exit_code == 130
    assert (root / ".cloudorch" / "state" / "w0.json").exists()
    assert not any((root / ".cloudorch" / "state" / f"w{i}.json").exists() for i in (1, 2, 3))
