"""Reading other stacks' outputs for `${stacks.NAME.outputs.OUT}`: from each stack's own state, in
its own backend (local or remote), without its lock, as `cloudorch output` reads them.

A sensitive output is kept in state as a hash only, so its value is computed again from that
stack's plan file and state, as `cloudorch output NAME --raw` does; it stays sensitive in the
plan that reads it. A stack that (through others) reads the plan being loaded is a cycle, refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

from cloudorch.errors import CloudorchError
from cloudorch.planfile.expressions import Unknown
from cloudorch.planfile.stackref import StackOutput, StackReader, StackReadError, StackRefSpec
from cloudorch.run.options import RunOptions

#: plan files being loaded in this context, outermost first (cycle detection)
_CHAIN: ContextVar[tuple[Path, ...]] = ContextVar("cloudorch_stack_chain", default=())
#: set by `fleet plan`: a stack with no state yet is one the same fleet creates first, so its
#: outputs are unknown until it is applied, not an error
_UNKNOWN_WHEN_NEW: ContextVar[bool] = ContextVar("cloudorch_stack_unknown_when_new", default=False)


@contextmanager
def new_stacks_unknown() -> Iterator[None]:
    """Within: outputs of a stack that has no state yet read as unknown (known after apply)."""
    token = _UNKNOWN_WHEN_NEW.set(True)
    try:
        yield
    finally:
        _UNKNOWN_WHEN_NEW.reset(token)


class _AllUnknown(Mapping[str, StackOutput]):
    """The outputs of a stack that does not exist yet: any name, unknown until it is applied."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getitem__(self, key: str) -> StackOutput:
        return StackOutput(Unknown(f"stacks.{self.name}.outputs.{key}"))

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@contextmanager
def loading(plan_file: Path) -> Iterator[None]:
    """Mark `plan_file` as being loaded while its stacks are read."""
    token = _CHAIN.set((*_CHAIN.get(), Path(plan_file).resolve()))
    try:
        yield
    finally:
        _CHAIN.reset(token)


def reader_for(opts: RunOptions) -> StackReader:
    """A `StackReader` that opens each stack with this run's environment and sandbox setting."""
    cache: dict[tuple[Path, str | None], Mapping[str, StackOutput]] = {}

    def read(name: str, spec: StackRefSpec, base: Path) -> Mapping[str, StackOutput]:
        path = spec.plan_path(base)
        key = (path, spec.stage)
        if key in cache:
            return cache[key]
        if path in _CHAIN.get():
            chain = " -> ".join(p.name for p in (*_CHAIN.get(), path))
            raise StackReadError(
                f"stack `{name}` reads this plan back (a cycle: {chain})",
                hint="cross-stack references must form a chain, not a loop",
            )
        if not path.is_file():
            raise StackReadError(
                f"stack `{name}`: plan file {path} does not exist",
                hint=f"`plan:` is relative to {base}",
            )
        other = replace(
            opts,
            plan_file=path,
            stage=spec.stage,
            vars=dict(spec.vars),
            var_files=(),
            state_dir=None,
            backend_url=None,
            targets=(),
            excludes=(),
            replace=(),
            release_version=None,
        )
        cache[key] = outputs_of(other, name)
        return cache[key]

    return read


def outputs_of(opts: RunOptions, name: str) -> Mapping[str, StackOutput]:
    """The outputs stack `name` (the plan `opts` names) recorded at its last apply."""
    from cloudorch.planfile.variables import missing_variables_unknown
    from cloudorch.run.state_ops import read_state

    try:
        # the stack's own required variables are not needed to find its state (see `vars:`)
        with loading(opts.plan_file), missing_variables_unknown():
            _, state, backend = read_state(opts)
            if (state is None or state.serial == 0) and _UNKNOWN_WHEN_NEW.get():
                return _AllUnknown(name)
            if state is None or state.serial == 0:
                raise StackReadError(
                    f"stack `{name}` has no state yet ({backend.describe()})",
                    hint=f"apply stack `{name}` first (`cloudorch apply {opts.plan_file}`)",
                )
            recorded = dict(state.outputs)
            got: dict[str, StackOutput] = {}
            for out, doc in recorded.items():
                if not isinstance(doc, dict):
                    continue
                if doc.get("sensitive"):
                    got[out] = StackOutput(doc.get("value"), sensitive=True, reveal=_revealer(opts, name, out))
                else:
                    got[out] = StackOutput(doc.get("value"), sensitive=False)
            return got
    except StackReadError:
        raise
    except CloudorchError as exc:
        where = f" ({exc.location})" if getattr(exc, "location", None) else ""
        raise StackReadError(f"cannot read stack `{name}`: {exc.message}{where}", hint=exc.hint) from None


def _revealer(opts: RunOptions, name: str, out: str) -> Callable[[], Any]:
    """Computes sensitive output `out` of stack `name` again (state holds its hash only)."""

    def reveal() -> Any:
        from cloudorch.run.state_ops import outputs

        try:
            with loading(opts.plan_file):
                return outputs(opts, reveal=out)[out].get("value")
        except CloudorchError as exc:
            where = f" ({exc.location})" if getattr(exc, "location", None) else ""
            raise StackReadError(
                f"cannot read sensitive output `{out}` of stack `{name}`: {exc.message}{where}",
                hint=f"give the variables it is built from under `stacks.{name}.vars` in this plan",
            ) from None

    return reveal
