"""Two state writes racing in one process: an abandoned operation's checkpoint and the final write.

After a second Ctrl-C the apply's last write runs while an abandoned operation may finish and
checkpoint from its own thread, through the same backend. Both start from the same serial. They
used to both pass the serial check, and the one that stored last won: the older snapshot could
replace the final state while both writers were told they had written it. The journal binder,
called by `write` between its serial check and the store (cloudorch/state/backends/local.py), is
the fault hook that holds the checkpoint at exactly that point.
"""

from __future__ import annotations

import threading
from pathlib import Path

from cloudorch.errors import StateError
from cloudorch.state import LocalBackend, ResourceRecord, State
from cloudorch.state.statefile import StateHeader


def _record(address: str) -> ResourceRecord:
    return ResourceRecord(address=address, type="core.null", provider="core", id=f"id-{address}")


def test_a_checkpoint_held_inside_its_write_never_lets_the_final_write_be_lost(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / ".cloudorch", "shop")
    backend.write(State(plan_name="shop", serial=1), None)
    base = backend.read()
    assert base is not None and base.serial == 1
    older = base.model_copy(update={"resources": {"old": _record("old")}})  # the checkpoint's snapshot
    newer = base.model_copy(update={"resources": {"old": _record("old"), "new": _record("new")}})  # the final one

    checkpoint_inside = threading.Event()
    checkpoint_go = threading.Event()
    final_inside = threading.Event()

    def hook(header: StateHeader) -> None:
        if threading.current_thread().name == "checkpoint":
            checkpoint_inside.set()
            checkpoint_go.wait(30)
        else:
            final_inside.set()

    backend.journal_binder = hook
    outcome: dict[str, BaseException | None] = {}

    def write(name: str, state: State) -> None:
        try:
            backend.write_next(state)
            outcome[name] = None
        except StateError as exc:
            outcome[name] = exc

    checkpoint = threading.Thread(target=write, args=("checkpoint", older), name="checkpoint")
    checkpoint.start()
    assert checkpoint_inside.wait(30)
    final = threading.Thread(target=write, args=("final", newer), name="final")
    final.start()
    # the final write must not get past the serial check while the checkpoint is storing: if it
    # does, it gets there at once; if it cannot, this wait simply ends
    final_inside.wait(1.0)
    checkpoint_go.set()
    checkpoint.join(30)
    final.join(30)

    stored = backend.read()
    assert stored is not None
    written = [name for name, exc in outcome.items() if exc is None]
    assert len(written) == 1, (
        f"both writes of serial {base.serial + 1} were reported stored; state holds {sorted(stored.resources)}"
    )
    # the one refused says so (the applier retries it from a fresh snapshot); the stored one is whole
    refused = outcome["final"]
    assert isinstance(refused, StateError) and "refusing to write" in refused.message
    assert sorted(stored.resources) == ["old"] and stored.serial == base.serial + 1

