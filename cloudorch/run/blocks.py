"""The plan file's `data:`, `moved:` and `imports:` within one run: what `plan_in` and a saved plan's
apply do with them around refresh and diff.

`start` renames moved addresses and adopts import targets in the session's in-memory state and
starts the data source reads; `finish_data` waits for them and gives the session a plan whose
`${data...}` are values. `annotate` marks the changes and fills the changeset's `moves`,
`imports`, `data` and `notes`; `replay` does the same to a saved plan's session. Nothing here
writes state: `persist_adoptions` does, once apply is confirmed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudorch.engine.datasources import read_data, substitute
from cloudorch.engine.imports import ImportResult, plan_imports, replay_imports
from cloudorch.engine.moves import MoveResult, apply_moves, replay_moves

if TYPE_CHECKING:
    from cloudorch.changes import Change, ChangeSet
    from cloudorch.run.options import RunOptions
    from cloudorch.run.session import Session


@dataclass
class BlocksRun:
    """The moves, imports and data reads of one plan."""

    moves: MoveResult = field(default_factory=MoveResult)
    imports: ImportResult = field(default_factory=ImportResult)
    wait_data: Callable[[], dict[str, Any]] = dict
    data: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """While refresh runs: on an error, the data reads are waited for before it propagates, so
        none still uses a provider the session is about to close."""
        try:
            yield
        except BaseException:
            _drain(self)
            raise

    def finish_data(self, sess: Session) -> None:
        """Wait for the data reads and put their values into the session's plan and instances."""
        self.data = self.wait_data()
        _substitute(sess, self.data)

    def annotate(self, changes: list[Change]) -> list[Change]:
        """Changes marked with the address they moved from and the id they import."""
        if not self.moves.moved and not self.imports.adopted:
            return changes
        moved_to = {b: a for a, b in self.moves.moved.items()}
        out = []
        for c in changes:
            update: dict[str, Any] = {}
            if c.deposed is None and c.address in moved_to:
                update["moved_from"] = moved_to[c.address]
            if c.deposed is None and c.address in self.imports.ids:
                update["importing"] = self.imports.ids[c.address]
            out.append(c.model_copy(update=update) if update else c)
        return out

    def changeset_fields(self) -> dict[str, Any]:
        return {
            "moves": self.moves.records(),
            "imports": self.imports.records(),
            "data": self.data,
            "notes": list(self.moves.notes),
        }


def start(sess: Session, opts: RunOptions) -> BlocksRun:
    """Moves renamed in the session's in-memory state; data reads started (not awaited)."""
    plan = sess.loaded.plan
    run = BlocksRun()
    if plan.data and not opts.destroy:
        run.wait_data = read_data(plan, sess.providers, parallelism=opts.parallelism)
    if plan.moves:
        try:
            run.moves = apply_moves(sess.state, plan.moves, planned=[i.address for i in sess.loaded.instances])
        except BaseException:
            _drain(run)
            raise
    return run


def adopt_imports(run: BlocksRun, sess: Session, opts: RunOptions, scope: set[str] | None) -> None:
    """Import targets read and adopted in the in-memory state (after moves, within --target/--exclude).

    A target without a resource block is outside every scope's graph: it is read only for
    `--generate-config-out`, whatever the scope.
    """
    plan = sess.loaded.plan
    if not plan.imports or opts.destroy:
        return
    instances = {i.address: i for i in sess.loaded.instances}
    if scope is not None:
        plan = replace(plan, imports=[t for t in plan.imports if t.to in scope or t.to not in instances])
    run.imports = plan_imports(
        plan,
        instances,
        sess.state,
        sess.providers,
        parallelism=opts.parallelism,
        generate=opts.generate_config_out is not None,
    )


def read_only_view(sess: Session, opts: RunOptions) -> None:
    """What a command that only reads (`drift`) needs: moves renamed in the in-memory state, so
    renamed objects are compared with their new blocks, and the data values in the plan."""
    plan = sess.loaded.plan
    if plan.moves:
        apply_moves(sess.state, plan.moves, planned=[i.address for i in sess.loaded.instances])
    if plan.data:
        _substitute(sess, read_data(plan, sess.providers, parallelism=opts.parallelism)())


def _drain(run: BlocksRun) -> None:
    # the data reads run on; an error here wins over theirs, but they are waited for
    with contextlib.suppress(Exception):
        run.wait_data()


def _substitute(sess: Session, data: dict[str, Any]) -> None:
    loaded = sess.loaded
    if not loaded.plan.data:
        return
    plan, instances = substitute(loaded.plan, loaded.instances, data)
    sess.loaded = replace(loaded, plan=plan, instances=instances)


def replay(sess: Session, saved: ChangeSet) -> None:
    """A saved plan's moves, imports and data values, put into its apply's session as planned."""
    if saved.moves:
        replay_moves(sess.state, saved.moves)
    if saved.imports:
        replay_imports(sess.state, saved.imports)
    _substitute(sess, dict(saved.data))


def persist_adoptions(sess: Session, cs: ChangeSet) -> None:
    """Write state with the moves and imports before any cloud operation starts.

    So an apply killed during its operations leaves them recorded: its journal names the new
    addresses, and the state it folds into already has them.
    """
    if cs.moves or cs.imports:
        sess.backend.write_next(sess.state)


def generated_config(run: BlocksRun, target: Path) -> str | None:
    """The YAML resource blocks for import targets without one (None when there are none)."""
    from cloudorch.planfile.generate import resource_blocks

    if not run.imports.unconfigured:
        return None
    return resource_blocks(run.imports.unconfigured, header=f"written by cloudorch plan --generate-config-out {target}")
