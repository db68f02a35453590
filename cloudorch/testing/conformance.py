"""The conformance kit: generated acceptance tests every resource type of every provider passes.

A pytest plugin shipped with cloudorch (registered through the `pytest11` entry point in
pyproject.toml, so it is loaded wherever cloudorch is installed and stays inert until a test
module uses it). A provider's test module declares one `ConformanceExample` per resource type
and subclasses `ConformanceSuite`; the plugin generates the checks below for each example and
drives the type through the engine (a plan file in `tmp_path`, planned and applied through
`cloudorch.run`), so ordering, refresh and retries are tested the way users meet them:

- `create`, `create_full`: read back equals what was asked (normalised as the example says),
  and a plan after the apply is empty;
- `update[PROP]`: an in-place update, read back equal, nothing else changed, the id kept;
- `force_new[PROP]`: a replace with a new id, the old object gone;
- `delete`: read says gone, a second delete of the old id is not an error;
- `import`, `find`: after state is thrown away, import by id and find by address give the object;
- `read_many`: agrees with `read`; `sensitive`: no sensitive value in state, plan JSON or attributes;
- `drift`: an out-of-band change through the cloud's own SDK shows in the next plan;
- `fault_transient[OP]`, `fault_lost[OP]`: each mutating SDK call of a create, update or delete
  fails once (transient), or acts on the server and loses its response: exactly one object;
- `crash`: the apply process is SIGKILLed after each mutating SDK call of a create; `recover`
  then `apply` converge on exactly one object.

The faults and the crash need the provider's `FaultSeam`; without one they report `n/a`. Each
run takes a seed (`--conformance-seed`, random by default) that a failure prints. The outcome of
every check is written to a JSON table (`--conformance-report`, default
`.cloudorch/conformance.json` under the rootdir) that `cloudorch providers --conformance` shows,
and `--conformance-docs FILE` rewrites the table between the markers in that Markdown file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

import pytest

from cloudorch.provider.contract import Observed, ReadRequest, ResourceType, sensitive_fields
from cloudorch.run.info import CONFORMANCE_CHECKS, CONFORMANCE_FILE, conformance_rows

if TYPE_CHECKING:
    from cloudorch.run.options import RunOptions

__all__ = [
    "ADDRESS",
    "CHECKS",
    "ConformanceEnv",
    "ConformanceExample",
    "ConformanceSuite",
    "FaultSeam",
    "Harness",
    "render_table",
]

#: the one resource each generated plan file declares
ADDRESS = "subject"
#: every check the kit generates, in the order of the table
CHECKS = CONFORMANCE_CHECKS
#: the table's file under the rootdir, unless `--conformance-report` says otherwise
DEFAULT_REPORT = CONFORMANCE_FILE
DOCS_START = "<!-- conformance-table:start -->"
DOCS_END = "<!-- conformance-table:end -->"

Census = Callable[[ResourceType[Any], str, Mapping[str, Any]], int]


class FaultSeam(Protocol):
    """How the kit injects faults into a provider's SDK calls; each provider's tests supply one.

    Only the provider's mutating calls count (creates, updates, deletes, tag writes; not reads),
    numbered from 1 in the order this process makes them inside the `with` block.
    """

    def counting(self) -> AbstractContextManager[Callable[[], int]]:
        """Count mutating calls; the value yielded answers how many were made so far."""
        ...

    def failing(self, call: int, *, lost: bool, rng: random.Random) -> AbstractContextManager[Callable[[], bool]]:
        """Make mutating call number `call` fail once with a transient error (`rng` may pick which).

        `lost`: let the call reach the server and act there, then fail on the client (a timeout
        or a dropped connection), the harsher case. The value yielded says whether it fired.
        """
        ...

    def crash_env(self, call: int) -> Mapping[str, str]:
        """Environment variables making a cloudorch process SIGKILL itself right after mutating
        call number `call` reached the server."""
        ...


@dataclass(frozen=True)
class ConformanceExample:
    """Example property sets of one resource type, from which the kit generates its checks.

    `minimal`/`full`: property sets (a string may hold `{run}`, replaced by a token unique to
    each object the kit makes, for names the cloud wants unique, and `{NAME}` for each of
    `ConformanceEnv.values`). `updates`: property -> a new
    value, each applied in place on top of `full`. `force_new`: property -> a new value that must
    replace. `drift(rt, observed)`: change the object out of band through the cloud's own SDK.
    `normalise(prop, value)`: the form in which asked and read values are compared.
    `census(rt, address, props)`: how many objects the cloud holds for this address and these
    properties (looked up by the cloud's own listing, not through the type); the fault and crash
    checks need it. `import_ignore`: properties an import cannot know (Terraform's
    ImportStateVerifyIgnore). `stateless`: the type keeps nothing outside state, so the checks
    that a deleted or replaced object reads as gone do not apply. `xfail`: check (`fault_lost` or
    `fault_lost[create]`) -> the known
    defect that makes it fail; marked strict, so the fix shows up as a failure to remove it.
    """

    type: str
    minimal: Mapping[str, Any]
    full: Mapping[str, Any] | None = None
    updates: Mapping[str, Any] = field(default_factory=dict)
    force_new: Mapping[str, Any] = field(default_factory=dict)
    drift: Callable[[ResourceType[Any], Observed], None] | None = None
    normalise: Callable[[str, Any], Any] | None = None
    census: Census | None = None
    import_ignore: Sequence[str] = ()
    xfail: Mapping[str, str] = field(default_factory=dict)
    #: the type keeps nothing outside state (`core.null`): read cannot say an object is gone
    stateless: bool = False
    #: the provider block's settings in the generated plan file (`providers: {NAME: ...}`), with
    #: `{NAME}` filled in as in the property sets (an emulator's URL known only at test time)
    provider_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def full_props(self) -> Mapping[str, Any]:
        return self.full if self.full is not None else self.minimal


@dataclass(frozen=True)
class ConformanceEnv:
    """What a provider's tests give the kit: the fault seam, and the environment of a subprocess
    (an emulator's endpoint, a PYTHONPATH) for the crash check."""

    seam: FaultSeam | None = None
    subprocess_env: Mapping[str, str] = field(default_factory=dict)
    #: `{NAME}` in an example's strings -> a value known only at test time (a VPC the tests made)
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Case:
    example: ConformanceExample
    check: str
    param: str | None = None

    @property
    def label(self) -> str:
        return f"{self.check}[{self.param}]" if self.param else self.check

    @property
    def id(self) -> str:
        return f"{self.example.type}-{self.check}" + (f"-{self.param}" if self.param else "")


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    """`{NAME}` replaced by `values[NAME]` (looked up only when used, so a value can be made lazily)."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), value)
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, values) for v in value]
    return value


class _Values(Mapping[str, str]):
    """The environment's values with the run's own on top, without reading the others early."""

    def __init__(self, base: Mapping[str, str], own: Mapping[str, str]) -> None:
        self.base, self.own = base, own

    def __getitem__(self, key: str) -> str:
        return self.own[key] if key in self.own else self.base[key]

    def __contains__(self, key: object) -> bool:
        return key in self.own or key in self.base

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self.base), **dict.fromkeys(self.own)})

    def __len__(self) -> int:
        return len(set(self.base) | set(self.own))


class Harness:
    """One plan file with one resource (`subject`) in its own folder, driven through `cloudorch.run`."""

    def __init__(self, root: Path, example: ConformanceExample, env: ConformanceEnv, token: str) -> None:
        self.root = root
        self.example = example
        self.env = env
        self.token = token
        root.mkdir(parents=True, exist_ok=True)
        self.plan_file = root / "conformance.yaml"
        self.asked: dict[str, Any] = {}
        self._providers: Any = None

    def props(self, props: Mapping[str, Any]) -> dict[str, Any]:
        return dict(_fill(dict(props), _Values(self.env.values, {"run": self.token})))

    def write(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Declare `subject` with `props` (`{run}` filled in); returns the properties written."""
        self.asked = self.props(props)
        doc = {
            "version": 1,
            "name": "conformance",
            "providers": {self.example.provider: self.props(self.example.provider_config)},
            "resources": {ADDRESS: {"type": self.example.type, "properties": self.asked}},
        }
        self.plan_file.write_text(json.dumps(doc, indent=2))  # JSON is YAML
        return self.asked

    @property
    def opts(self) -> RunOptions:
        from cloudorch.run.options import RunOptions

        return RunOptions(plan_file=self.plan_file, command="conformance")

    def apply(self, *, destroy: bool = False) -> Any:
        from dataclasses import replace

        from cloudorch.run.apply import apply

        result = apply(replace(self.opts, destroy=destroy))
        assert result is not None
        assert result.ok, "the apply failed: " + "; ".join(f"{a}: {e}" for a, e in result.failed.items())
        return result

    def changes(self) -> list[Any]:
        """The changes a plan would make now (no-ops left out)."""
        from cloudorch.run.plan import plan

        return [c for c in plan(self.opts).changeset.changes if c.is_change]

    def plan_json(self) -> str:
        """What a plan reports of the object as it is (each change's `before` and diff), in JSON.

        A change's `after` is left out: it is the plan file's own input, carried for the apply.
        """
        from cloudorch.run.plan import plan

        cs = plan(self.opts).changeset
        return json.dumps(
            [[c.before, [d.model_dump(mode="json") for d in c.diff]] for c in cs.changes], default=str
        )

    def assert_plan_empty(self, after: str) -> None:
        left = self.changes()
        assert not left, f"a plan after {after} is not empty: " + "; ".join(
            f"{c.action.value} {c.address} {[d.path for d in c.diff]} {c.reasons}" for c in left
        )

    def record(self) -> Any | None:
        from cloudorch.run.state_ops import state_list

        return next((r for r in state_list(self.opts) if r.address == ADDRESS), None)

    def forget_state(self) -> None:
        from cloudorch.run.state_ops import state_rm

        state_rm(self.opts, ADDRESS)

    @contextlib.contextmanager
    def type(self) -> Iterator[ResourceType[Any]]:
        """The resource type bound to the plan's provider block, as the engine binds it (made once
        per harness: the provider block never changes, and an SDK client costs time to make)."""
        from cloudorch.run.session import load, providers_for

        if self._providers is None:
            self._providers = providers_for(load(self.opts), self.opts)
        yield self._providers.resource_type(self.example.provider, self.example.type)

    def close(self) -> None:
        if self._providers is not None:
            self._providers.close()
            self._providers = None

    def model(self, rt: ResourceType[Any], props: Mapping[str, Any]) -> Any:
        return rt.Properties.model_validate(dict(props))

    def read(self, id: str, props: Mapping[str, Any]) -> Observed | None:
        with self.type() as rt:
            return rt.read(ADDRESS, id, self.model(rt, props))

    def census(self, props: Mapping[str, Any]) -> int:
        assert self.example.census is not None
        with self.type() as rt:
            return self.example.census(rt, ADDRESS, props)

    def same(self, prop: str, asked: Any, seen: Any) -> bool:
        norm = self.example.normalise or (lambda _p, v: v)
        return bool(norm(prop, asked) == norm(prop, seen))

    def assert_reads_back(self, seen: Observed | None, asked: Mapping[str, Any], rt_sensitive: frozenset[str]) -> None:
        assert seen is not None, f"{self.example.type}: read after the apply says the object is gone"
        wrong = [
            f"{k}: asked {v!r}, read {seen.properties[k]!r}"
            for k, v in asked.items()
            if k not in rt_sensitive and k in seen.properties and not self.same(k, v, seen.properties[k])
        ]
        assert not wrong, f"{self.example.type}: read back differs from what was asked: " + "; ".join(wrong)


def _capabilities(rt_cls: type[ResourceType[Any]]) -> dict[str, bool]:
    """Which optional methods a type implements (overrides), as the contract defines them."""
    return {
        "find": rt_cls.find is not ResourceType.find,
        "import": rt_cls.import_ is not ResourceType.import_,
        "read_many": rt_cls.read_many is not ResourceType.read_many,
    }


def _type_class(type_name: str) -> type[ResourceType[Any]]:
    from cloudorch.provider.registry import Registry

    return Registry().type_class(type_name)


def _cases(example: ConformanceExample) -> list[_Case]:
    cases = [_Case(example, "create"), _Case(example, "create_full")]
    cases += [_Case(example, "update", p) for p in example.updates] or [_Case(example, "update")]
    cases += [_Case(example, "force_new", p) for p in example.force_new] or [_Case(example, "force_new")]
    cases += [_Case(example, c) for c in ("delete", "import", "find", "read_many", "sensitive", "drift")]
    for check in ("fault_transient", "fault_lost"):
        cases += [_Case(example, check, op) for op in ("create", "update", "delete")]
    cases.append(_Case(example, "crash"))
    return cases


def _marks(case: _Case) -> list[pytest.MarkDecorator]:
    reason = case.example.xfail.get(case.label) or case.example.xfail.get(case.check)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _leaves(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every scalar inside `value` as text, with where it is (`.KEY`, `[N]`)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{where}[{i}]")
    elif value is not None:
        yield where, str(value)


#: (suite, type, operation) -> how many mutating SDK calls the operation makes (see `_count_calls`)
_COUNTS: dict[tuple[str, str, str], int] = {}


def _na(why: str) -> None:
    pytest.skip(f"n/a: {why}")


# --------------------------------------------------------------------------- the generated checks


class ConformanceSuite:
    """Subclass in a provider's tests (its name must start with `Test`) and set `examples`.

    A fixture `conformance_env` (returning a `ConformanceEnv`) supplies the fault seam; the
    default has none. Each test method is one check, generated per example (and per property).
    """

    examples: ClassVar[Sequence[ConformanceExample]] = ()
    #: how many of an operation's mutating calls the fault and crash checks hit: 0 every one, N a
    #: seeded sample of N that always holds the last (`--conformance-max-calls` overrides it)
    max_calls: ClassVar[int] = 0

    # each check receives `case`, parametrised by the plugin's pytest_generate_tests

    def test_conformance(
        self,
        case: _Case,
        tmp_path: Path,
        conformance_env: ConformanceEnv,
        conformance_rng: random.Random,
        request: pytest.FixtureRequest,
    ) -> None:
        self._env = conformance_env
        option = request.config.getoption("--conformance-max-calls")
        self._max_calls = int(option) if option is not None else self.max_calls
        # a token unique to each object this run makes, for names the cloud wants unique
        stamp = f"{os.getpid():x}{random.SystemRandom().randrange(16**6):06x}"
        made: list[Harness] = []

        def new(name: str) -> Harness:
            made.append(Harness(tmp_path / name, case.example, conformance_env, f"cf{stamp}{len(made) + 1}"))
            return made[-1]

        try:
            getattr(self, f"_check_{case.check}")(case, new, conformance_rng)
        finally:
            for h in made:
                h.close()

    # -- lifecycle

    def _create(self, h: Harness, props: Mapping[str, Any]) -> Any:
        asked = h.write(props)
        h.apply()
        rec = h.record()
        assert rec is not None, "the apply left no record of the object in state"
        with h.type() as rt:
            seen = rt.read(ADDRESS, rec.id, h.model(rt, asked))
            h.assert_reads_back(seen, asked, sensitive_fields(rt.Properties))
        h.assert_plan_empty("the create")
        return rec

    def _check_create(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        h = new("create")
        self._create(h, case.example.minimal)
        if case.example.census is not None:
            assert h.census(h.asked) == 1, "the create left other than exactly one object in the cloud"
        h.apply(destroy=True)

    def _check_create_full(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        if case.example.full is None:
            _na("the example declares no full property set")
        h = new("full")
        self._create(h, case.example.full_props)
        h.apply(destroy=True)

    def _check_update(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        if case.param is None:
            _na("the example declares no mutable property")
        assert case.param is not None
        h = new("update")
        before = self._create(h, case.example.full_props)
        asked = h.write({**case.example.full_props, case.param: case.example.updates[case.param]})
        changes = h.changes()
        assert [c.action.value for c in changes] == ["update"], (
            f"changing {case.param} should plan one in-place update, not {[c.action.value for c in changes]}"
        )
        changed = {d.path.split(".", 1)[0].split("[", 1)[0] for d in changes[0].diff}
        assert changed <= {case.param}, f"changing {case.param} also changes {sorted(changed - {case.param})}"
        h.apply()
        after = h.record()
        assert after is not None and after.id == before.id, (
            f"an in-place update of {case.param} changed the id: {before.id} -> {after.id if after else None}"
        )
        with h.type() as rt:
            h.assert_reads_back(rt.read(ADDRESS, after.id, h.model(rt, asked)), asked, sensitive_fields(rt.Properties))
        h.assert_plan_empty(f"the update of {case.param}")
        if case.example.census is not None:
            assert h.census(asked) == 1, "the update left other than exactly one object in the cloud"
        h.apply(destroy=True)

    def _check_force_new(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        if case.param is None:
            _na("the example declares no force-new property")
        assert case.param is not None
        h = new("replace")
        old_props = h.props(case.example.full_props)
        before = self._create(h, case.example.full_props)
        asked = h.write({**case.example.full_props, case.param: case.example.force_new[case.param]})
        actions = [c.action.value for c in h.changes()]
        assert actions == ["replace"], f"changing {case.param} should plan one replace, not {actions}"
        h.apply()
        after = h.record()
        assert after is not None and after.id != before.id, f"a replace kept the id {before.id}"
        with h.type() as rt:
            h.assert_reads_back(rt.read(ADDRESS, after.id, h.model(rt, asked)), asked, sensitive_fields(rt.Properties))
        gone = case.example.stateless or h.read(before.id, old_props) is None
        assert gone, f"the replaced object {before.id} is still there"
        if case.example.census is not None:
            assert h.census(old_props) == 0, "the replaced object is still in the cloud"
            assert h.census(asked) == 1, "the replace left other than exactly one new object"
        h.assert_plan_empty(f"the replace for {case.param}")
        h.apply(destroy=True)

    def _check_delete(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        h = new("delete")
        rec = self._create(h, case.example.minimal)
        h.apply(destroy=True)
        assert h.record() is None, "destroy left the object in state"
        assert case.example.stateless or h.read(rec.id, h.asked) is None, f"read after destroy still finds {rec.id}"
        with h.type() as rt:
            rt.delete(ADDRESS, rec.id, h.model(rt, h.asked))  # again: not an error
        if case.example.census is not None:
            assert h.census(h.asked) == 0, "destroy left the object in the cloud"

    def _check_import(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        if not _capabilities(_type_class(case.example.type))["import"]:
            _na("the type does not implement import_")
        from cloudorch.run.state_ops import state_import

        h = new("import")
        rec = self._create(h, case.example.full_props)
        h.forget_state()
        got = state_import(h.opts, ADDRESS, rec.id)
        assert got.id == rec.id, f"import of {rec.id} recorded id {got.id}"
        ignore = set(case.example.import_ignore)
        with h.type() as rt:
            secret = sensitive_fields(rt.Properties)
        wrong = [
            f"{k}: applied {v!r}, imported {got.properties.get(k)!r}"
            for k, v in h.asked.items()
            if k not in ignore and k not in secret and k in got.properties and not h.same(k, v, got.properties[k])
        ]
        assert not wrong, "the import does not read back what was applied: " + "; ".join(wrong)
        h.apply(destroy=True)

    def _check_find(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        if not _capabilities(_type_class(case.example.type))["find"]:
            _na("the type does not implement find")
        h = new("find")
        rec = self._create(h, case.example.full_props)
        h.forget_state()
        with h.type() as rt:
            found = rt.find(ADDRESS, h.model(rt, h.asked))
        assert found is not None, "find by address does not find the object after state was thrown away"
        assert found.id == rec.id, f"find found {found.id}, not the object made ({rec.id})"
        if case.example.census is not None:
            assert h.census(h.asked) == 1
        with h.type() as rt:
            rt.delete(ADDRESS, rec.id, h.model(rt, h.asked))

    def _check_read_many(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        if not _capabilities(_type_class(case.example.type))["read_many"]:
            _na("the type does not override read_many")
        h = new("readmany")
        rec = self._create(h, case.example.full_props)
        with h.type() as rt:
            model = h.model(rt, h.asked)
            one = rt.read(ADDRESS, rec.id, model)
            gone_id = rec.id + "-conformance-missing"
            many = rt.read_many([ReadRequest(ADDRESS, rec.id, model)])
        assert len(many) == 1, f"read_many of one request answered {len(many)}"
        assert many[0] is not None and one is not None
        assert (many[0].id, many[0].properties) == (one.id, one.properties), "read_many and read disagree"
        assert gone_id  # a missing id is covered by `delete` (read says gone)
        h.apply(destroy=True)

    def _check_sensitive(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        secret_props = sensitive_fields(_type_class(case.example.type).Properties)
        h = new("sensitive")
        asked = h.props(case.example.full_props)
        # each string inside a sensitive value (a map of environment variables holds several)
        secrets = {
            f"{k}{where}": leaf
            for k, v in asked.items()
            if k in secret_props
            for where, leaf in _leaves(v)
            if leaf not in ("", "None")
        }
        if not secrets:
            _na("the type has no sensitive property set in the example")
        rec = self._create(h, case.example.full_props)
        with h.type() as rt:
            seen = rt.read(ADDRESS, rec.id, h.model(rt, asked))
        h.apply()  # a refresh with nothing to change also writes state
        plans = [h.plan_json()]
        if case.example.updates:  # a plan that diffs against what was read
            h.write({**case.example.full_props, **case.example.updates})
            plans.append(h.plan_json())
            h.apply()
        stored = "\n".join(p.read_text(errors="replace") for p in (h.root / ".cloudorch").rglob("*") if p.is_file())
        for prop, value in secrets.items():
            assert not any(value in p for p in plans), f"the plan JSON shows {prop} in clear"
            assert value not in stored, f"state (or its journal or history) holds {prop} in clear"
            assert seen is None or value not in json.dumps(seen.attributes, default=str), (
                f"read returns {prop} in clear among the attributes"
            )
        h.apply(destroy=True)

    def _check_drift(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        if case.example.drift is None:
            _na("the example declares no out-of-band mutation")
        assert case.example.drift is not None
        h = new("drift")
        rec = self._create(h, case.example.full_props)
        with h.type() as rt:
            seen = rt.read(ADDRESS, rec.id, h.model(rt, h.asked))
            assert seen is not None
            case.example.drift(rt, seen)
        assert h.changes(), "a change made through the cloud's SDK does not show in the next plan"
        h.apply()
        h.assert_plan_empty("repairing the drift")
        h.apply(destroy=True)

    # -- faults

    def _fault_setup(self, case: _Case, env: ConformanceEnv) -> tuple[FaultSeam, Census]:
        if env.seam is None:
            _na("the provider's tests supply no fault seam")
        if case.example.census is None:
            _na("the example declares no census to count objects")
        if case.param == "update" and not case.example.updates:
            _na("the example declares no mutable property")
        assert env.seam is not None and case.example.census is not None
        return env.seam, case.example.census

    def _operation(self, h: Harness, op: str, stage: str) -> None:
        """`stage` setup: make what `op` starts from; `stage` run: do `op` (what faults hit)."""
        ex = h.example
        updated = {**ex.full_props, **ex.updates}
        if stage == "setup":
            h.write(ex.full_props)
            if op != "create":
                h.apply()
            if op == "update":
                h.write(updated)
            return
        h.apply(destroy=op == "delete")

    def _expect(self, h: Harness, op: str, what: str) -> None:
        want = 0 if op == "delete" else 1
        count = h.census(h.asked)
        assert count == want, f"{what}: {count} object(s) in the cloud, expected {want}"
        if op != "delete":
            rec = h.record()
            assert rec is not None, f"{what}: the object is in the cloud but not in state"
            assert h.read(rec.id, h.asked) is not None, f"{what}: state's id {rec.id} reads as gone"
            h.assert_plan_empty(what)
            h.apply(destroy=True)
        assert h.census(h.asked) == 0, f"{what}: cleaning up left objects behind"

    def _check_faults(self, case: _Case, new: Callable[[str], Harness], rng: random.Random, lost: bool) -> None:
        seam, _ = self._fault_setup(case, self._env)
        op = case.param or "create"
        calls = self._count_calls(case, seam, new, op)
        if calls == 0:
            _na(f"the {op} makes no mutating SDK call")
        for call in self._calls(calls, rng):
            h = new(f"{op}-{'lost' if lost else 'fail'}-{call}")
            self._operation(h, op, "setup")
            how = "acting but losing its response" if lost else "failing once"
            what = f"{op} with mutating call {call}/{calls} {how}"
            with seam.failing(call, lost=lost, rng=rng) as fired:
                try:
                    self._operation(h, op, "run")
                except AssertionError as exc:
                    raise AssertionError(f"{what}: {exc}") from exc
                except Exception as exc:
                    raise AssertionError(f"{what}: {type(exc).__name__}: {exc}") from exc
            assert fired(), f"{what}: the fault seam never reached call {call}"
            self._expect(h, op, what)

    def _count_calls(self, case: _Case, seam: FaultSeam, new: Callable[[str], Harness], op: str) -> int:
        """How many mutating SDK calls `op` makes, counted on a probe run without faults, once per
        type and operation in this process: the transient, lost and crash checks of a type share
        the count (a probe is a whole create and destroy through the engine)."""
        key = (f"{type(self).__module__}.{type(self).__qualname__}", case.example.type, op)
        if key not in _COUNTS:
            probe = new(f"{op}-count")
            self._operation(probe, op, "setup")
            with seam.counting() as made:
                self._operation(probe, op, "run")
                _COUNTS[key] = made()
            if op != "delete":
                probe.apply(destroy=True)
        return _COUNTS[key]

    def _calls(self, calls: int, rng: random.Random) -> list[int]:
        """Which of the `calls` mutating calls to hit, in a seeded order: all of them, or a seeded
        sample of `--conformance-max-calls` (the last call is always in it: the one whose effect
        a retry most easily repeats)."""
        order = list(range(1, calls + 1))
        rng.shuffle(order)
        if 0 < self._max_calls < calls:
            order = [calls, *[c for c in order if c != calls][: self._max_calls - 1]]
        return order

    def _check_fault_transient(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        self._check_faults(case, new, rng, lost=False)

    def _check_fault_lost(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        self._check_faults(case, new, rng, lost=True)

    def _check_crash(self, case: _Case, new: Callable[[str], Harness], rng: random.Random) -> None:
        from cloudorch.run.apply import recover

        seam, _ = self._fault_setup(case, self._env)
        calls = self._count_calls(case, seam, new, "create")
        if calls == 0:
            _na("the create makes no mutating SDK call")
        for call in self._calls(calls, rng):
            h = new(f"crash-{call}")
            h.write(case.example.full_props)
            env = {**os.environ, **self._env.subprocess_env, **seam.crash_env(call)}
            proc = subprocess.run(
                [sys.executable, "-m", "cloudorch", "apply", str(h.plan_file), "--auto-approve"],
                cwd=h.root, env=env, capture_output=True, text=True, timeout=300,
            )
            what = f"killed after mutating call {call}/{calls} of the create"
            assert proc.returncode == -signal.SIGKILL, (
                f"{what}: the apply was not killed (exit {proc.returncode}): {proc.stderr[-2000:]}"
            )
            recover(h.opts)
            h.apply()
            self._expect(h, "create", f"{what}, then recover and apply")

    _env: ConformanceEnv = ConformanceEnv()
    _max_calls = 0


# --------------------------------------------------------------------------- the plugin's hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "cloudorch provider conformance kit")
    group.addoption(
        "--conformance-seed", type=int, default=None, help="seed of the randomised choices (default: random)"
    )
    group.addoption(
        "--conformance-report", default=None,
        help=f"where the type x check table is written (default: {DEFAULT_REPORT} under the rootdir)",
    )
    group.addoption(
        "--conformance-max-calls", type=int, default=None,
        help="hit at most N of an operation's mutating calls in the fault and crash checks, a seeded "
        "sample (0: every call; default: the suite's max_calls)",
    )
    group.addoption("--conformance-docs", default=None, help="a Markdown file whose conformance table to rewrite")


def pytest_configure(config: pytest.Config) -> None:
    seed = config.getoption("--conformance-seed", None)
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    config.stash[_SEED] = int(seed)
    config.stash[_RESULTS] = {}
    config.addinivalue_line("markers", "conformance(type, check): a check generated by cloudorch's conformance kit")
    config.pluginmanager.register(_Recorder(config), "cloudorch-conformance-recorder")


_SEED = pytest.StashKey[int]()
_RESULTS = pytest.StashKey[dict[str, dict[str, str]]]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cls = metafunc.cls
    if cls is None or not issubclass(cls, ConformanceSuite) or "case" not in metafunc.fixturenames:
        return
    params = [
        pytest.param(c, id=c.id, marks=[pytest.mark.conformance(c.example.type, c.label), *_marks(c)])
        for ex in cls.examples
        for c in _cases(ex)
    ]
    metafunc.parametrize("case", params)


@pytest.fixture
def conformance_env() -> ConformanceEnv:
    """No fault seam: a provider's tests override this fixture to supply theirs."""
    return ConformanceEnv()


@pytest.fixture
def conformance_rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(f"{request.config.stash[_SEED]}:{request.node.nodeid}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    mark = item.get_closest_marker("conformance")
    if mark is None:
        return report
    type_name, check = mark.args
    report.user_properties.append(("conformance", (type_name, check)))
    if report.failed:
        seed = item.config.stash[_SEED]
        report.sections.append(("conformance seed", f"seed {seed}: rerun with --conformance-seed {seed}"))
    return report


def _status(report: pytest.TestReport) -> str | None:
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return "xfail"
        return "n/a" if "n/a:" in str(report.longrepr) else "skip"
    if report.failed:
        return "fail"  # a strict XPASS too: the known defect is gone, the mark must go
    return "pass" if report.when == "call" else None


class _Recorder:
    """Collects each conformance check's outcome (on the xdist controller too, from the workers' reports)."""

    def __init__(self, config: pytest.Config) -> None:
        self.results: dict[str, dict[str, str]] = config.stash[_RESULTS]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = next((v for k, v in report.user_properties if k == "conformance"), None)
        status = _status(report) if found is not None else None
        if found is None or status is None:
            return
        type_name, check = cast(tuple[str, str], found)
        row = self.results.setdefault(type_name, {})
        if status == "fail" or check not in row or row[check] == "skip":
            row[check] = status


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # an xdist worker: its reports reach the controller, which writes the table
    results = config.stash.get(_RESULTS, {})
    if not results:
        return
    path = Path(config.getoption("--conformance-report") or Path(config.rootpath) / DEFAULT_REPORT)
    table = write_table(path, results, seed=config.stash[_SEED])
    docs = config.getoption("--conformance-docs")
    if docs:
        rewrite_docs(Path(docs), table)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if config.stash.get(_RESULTS, {}):
        terminalreporter.write_line(f"conformance seed: {config.stash[_SEED]} (--conformance-seed to repeat)")


# --------------------------------------------------------------------------- the table


def write_table(path: Path, results: Mapping[str, Mapping[str, str]], *, seed: int) -> dict[str, Any]:
    """Merge this run's results into the table at `path` (a type run now replaces its old row)."""
    try:
        table: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    types: dict[str, Any] = dict(table.get("types", {}))
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for type_name, checks in results.items():
        types[type_name] = {"checks": dict(sorted(checks.items())), "seed": seed, "at": now}
    table = {"format": 1, "types": dict(sorted(types.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=2) + "\n")
    tmp.replace(path)
    return table


def render_table(table: Mapping[str, Any]) -> str:
    """The table as Markdown: a row per type, a column per check (a parametrised check shows its
    worst result and, when they differ, how many of its cases passed)."""
    lines = ["| type | " + " | ".join(CHECKS) + " |", "|---" * (len(CHECKS) + 1) + "|"]
    for row in conformance_rows(table):
        lines.append(f"| `{row.type}` | " + " | ".join(row.cells[c] for c in CHECKS) + " |")
    return "\n".join(lines)


def rewrite_docs(doc: Path, table: Mapping[str, Any]) -> None:
    text = doc.read_text()
    if DOCS_START not in text or DOCS_END not in text:
        raise pytest.UsageError(f"{doc} has no {DOCS_START} ... {DOCS_END} markers for the conformance table")
    head, rest = text.split(DOCS_START, 1)
    tail = rest.split(DOCS_END, 1)[1]
    doc.write_text(f"{head}{DOCS_START}\n{render_table(table)}\n{DOCS_END}{tail}")
