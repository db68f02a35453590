"""Rego (OPA) policies evaluated in process with regopy: Conftest-compatible `deny` / `warn` /
`violation` rules, compiled once per command, each rule queried once per input document.

Owns the regopy boundary: module parsing and syntax errors with file:line, building the input
(cut down to what the rules can reach: see `reach`), parallel querying, result normalisation,
and `test_*` rules. It returns `Violation`s; it does not decide what blocks.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudorch.errors import Location
from cloudorch.policy import reach
from cloudorch.policy.model import (
    Level,
    PolicyEvaluationError,
    PolicyLoadError,
    RegoTestResult,
    Violation,
)

try:  # regopy is the `policy` extra: the core works without it
    import regopy
    from regopy.rego_shared import rego as _lib
    from regopy.rego_shared import rego_free_output, rego_get_error, rego_output_ok, rego_output_string
except ImportError:  # pragma: no cover - exercised only without the extra
    regopy = None

RULE_KINDS = ("deny", "warn", "violation")
_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_RULE_RE = re.compile(r"^((?:deny|warn|violation)(?:_[A-Za-z0-9_]+)?)\b(?!\s*\()", re.MULTILINE)
_TEST_RE = re.compile(r"^((?:todo_)?test_[A-Za-z0-9_]+)\b", re.MULTILINE)
_LEVEL_RE = re.compile(r"^\s*#\s*cloudorch:\s*level\s*[=:]\s*([A-Za-z]+)", re.MULTILINE)
_COMMENT_RE = re.compile(r"#[^\n]*")


def _require_regopy(what: str) -> None:
    if regopy is None:
        raise PolicyLoadError(
            f"{what} needs the Rego engine, which is not installed",
            hint="pip install 'cloudorch[policy]' (it installs regopy)",
        )


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _parse_rego_errors(raw: str) -> list[tuple[str | None, int | None, str]]:
    """(module name, char offset, message) for each error in rego-cpp's error sequence."""
    out: list[tuple[str | None, int | None, str]] = []
    pos = 0
    while True:
        i = raw.find("(error ", pos)
        if i < 0:
            break
        name: str | None = None
        offset: int | None = None
        m = re.match(r"\(error (\d+):", raw[i:])
        j = i + 7
        if m:
            n = int(m.group(1))
            start = i + m.end()
            name = raw[start : start + n]
            rest = re.match(r"\|(\d+)\|(\d+)", raw[start + n :])
            if rest:
                offset = int(rest.group(1))
            j = start + n
        mm = re.search(r"\(errormsg (\d+):", raw[j:])
        message = "Rego error"
        if mm:
            k = j + mm.end()
            message = raw[k : k + int(mm.group(1))]
            j = k
        out.append((name, offset, message))
        pos = j
    return out


@dataclass(frozen=True)
class RegoModule:
    """One `.rego` file: its package, the Conftest rules and tests it defines, and a level it asks for."""

    file: str
    text: str
    package: str
    rules: dict[str, int]  # rule name -> line of its first definition
    tests: dict[str, int]
    level: Level | None

    @classmethod
    def parse(cls, file: str, text: str) -> RegoModule:
        m = _PACKAGE_RE.search(_COMMENT_RE.sub("", text))
        if m is None:
            raise PolicyLoadError(
                f"{file}: no `package` declaration",
                location=Location(file, 1),
                hint="start the file with `package main`",
            )

        def lines(rx: re.Pattern[str]) -> dict[str, int]:
            found: dict[str, int] = {}
            for hit in rx.finditer(text):
                found.setdefault(hit.group(1), text.count("\n", 0, hit.start()) + 1)
            return found

        lm = _LEVEL_RE.search(text)
        level = Level.parse(lm.group(1), where=file) if lm else None
        return cls(file, text, m.group(1), lines(_RULE_RE), lines(_TEST_RE), level)


@dataclass(frozen=True)
class RegoRule:
    """One rule queried per evaluation, e.g. `data.main.deny`, and how its results are reported."""

    package: str
    name: str
    policy_id: str
    level: Level
    source: str
    line: int

    @property
    def query(self) -> str:
        return f"data.{self.package}.{self.name}"

    @property
    def kind(self) -> str:
        return f"rego:{self.package}.{self.name}"


def _new_interpreter(modules: Sequence[RegoModule]) -> Any:
    interp = regopy.Interpreter()
    interp.log_level = regopy.LogLevel.NONE  # rego-cpp would otherwise print errors to stdout
    names = {f"m{i}.rego": mod for i, mod in enumerate(modules)}
    for name, mod in names.items():
        try:
            interp.add_module(name, mod.text)
        except regopy.RegoError as exc:
            raise _syntax_error(str(exc), names) from exc
    return interp


def _syntax_error(raw: str, names: Mapping[str, RegoModule]) -> PolicyLoadError:
    errors = _parse_rego_errors(raw)
    if not errors:
        return PolicyLoadError(f"Rego error: {raw.strip()}")
    rendered = []
    first: Location | None = None
    for name, offset, message in errors:
        mod = names.get(name or "")
        if mod is None:
            rendered.append(message)
            continue
        line, col = _line_col(mod.text, offset) if offset is not None else (None, None)
        loc = Location(mod.file, line, col)
        first = first or loc
        rendered.append(f"{loc}: {message}")
    assert first is not None or rendered
    return PolicyLoadError(
        "Rego syntax error: " + ("\n  ".join(rendered) if len(rendered) > 1 else rendered[0].split(": ", 1)[-1]),
        location=first,
        hint="check the policy with `opa check` or `cloudorch policy test`",
    )


_UNDEFINED = object()


def _run_query(interp: Any, query: str) -> Any:
    """One query's value, `_UNDEFINED`, or PolicyEvaluationError (regopy's Output chokes on errors)."""
    impl = _lib.regoQuery(interp._impl, query.encode())
    if not impl:  # regopy's own rego_query misses this case (it compares the pointer with 0)
        raise PolicyEvaluationError(f"Rego error while evaluating {query}: {rego_get_error(interp._impl)}")
    try:
        text = rego_output_string(impl)
        ok = rego_output_ok(impl)
    finally:
        rego_free_output(impl)
    if text == "undefined":
        return _UNDEFINED
    if not ok or text.lstrip().startswith("("):
        errors = _parse_rego_errors(text)
        message = "; ".join(m for _, _, m in errors) or text.strip()
        raise PolicyEvaluationError(f"Rego error while evaluating {query}: {message}")
    value = json.loads(text)
    results = value if isinstance(value, list) else [value]
    if not results or not results[0].get("expressions"):
        return _UNDEFINED
    return results[0]["expressions"][0]


class _Builder:
    """rego-cpp's input-builder calls as private ctypes function objects.

    `regopy.rego_shared` declares the same functions; these are separate objects (so regopy's
    own declarations are untouched) with argument types that take Python values directly.
    """

    def __init__(self) -> None:
        vp = ctypes.c_void_p

        def fn(name: str, *argtypes: Any) -> Any:
            f = _lib[name]  # CDLL item access returns a new function object each time
            f.argtypes = argtypes
            f.restype = ctypes.c_uint
            return f

        self.string = fn("regoInputString", vp, ctypes.c_char_p)
        self.int = fn("regoInputInt", vp, ctypes.c_int64)
        self.float = fn("regoInputFloat", vp, ctypes.c_double)
        self.bool = fn("regoInputBoolean", vp, ctypes.c_int)
        self.null = fn("regoInputNull", vp)
        self.item = fn("regoInputObjectItem", vp)
        self.object = fn("regoInputObject", vp, ctypes.c_size_t)
        self.array = fn("regoInputArray", vp, ctypes.c_size_t)


_BUILDER: _Builder | None = None


def make_input(value: Any) -> Any:
    """A `regopy.Input` built ~3x faster than `regopy.Input(value)`.

    Same C calls as regopy's own builder, minus its per-node ABC isinstance checks and string
    buffer copies, with string encodings cached (the same keys and many values repeat in every
    change) and scalar values of objects handled in the loop (most values are scalars).
    """
    global _BUILDER
    if _BUILDER is None:
        _BUILDER = _Builder()
    b = _BUILDER
    put_str, put_int, put_float, put_bool, put_null = b.string, b.int, b.float, b.bool, b.null
    put_item, put_object, put_array = b.item, b.object, b.array
    raw = _lib.regoNewInput()
    impl = ctypes.c_void_p(raw)
    encoded: dict[str, bytes] = {}
    status = 0

    def enc(text: str) -> bytes:
        got = encoded.get(text)
        if got is None:
            got = encoded[text] = text.encode()
        return got

    def add(val: Any) -> None:
        nonlocal status
        t = type(val)
        if t is str:
            status |= put_str(impl, enc(val))
        elif t is dict:
            for k, v in val.items():
                status |= put_str(impl, enc(k) if type(k) is str else str(k).encode())
                tv = type(v)
                if tv is str:
                    status |= put_str(impl, enc(v))
                elif tv is bool:
                    status |= put_bool(impl, v)
                else:
                    add(v)
                status |= put_item(impl)
            status |= put_object(impl, len(val))
        elif t is list or t is tuple:
            for x in val:
                add(x)
            status |= put_array(impl, len(val))
        elif t is bool:
            status |= put_bool(impl, val)
        elif val is None:
            status |= put_null(impl)
        elif t is int:
            status |= put_int(impl, val)
        elif t is float:
            status |= put_float(impl, val)
        elif isinstance(val, Mapping):
            add(dict(val))
        elif isinstance(val, list | tuple | set | frozenset):
            add(list(val))
        elif isinstance(val, bool):
            add(bool(val))
        elif isinstance(val, int):
            add(int(val))
        elif isinstance(val, str):
            add(str(val))
        else:
            add(str(val))  # dates and the like: as JSON would show them

    try:
        add(value)
    except BaseException:
        _lib.regoFreeInput(raw)
        raise
    if status:
        _lib.regoFreeInput(raw)
        raise PolicyEvaluationError("could not build the Rego input document")
    out = regopy.Input.__new__(regopy.Input)
    out._impl = raw
    return out


def _items(value: Any) -> list[Any]:
    """Conftest semantics: a set/array of messages, a map of message -> true, or one message."""
    if value is _UNDEFINED or value is None or value is False:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if value and all(v is True for v in value.values()):
            return list(value)
        if "msg" in value or "message" in value:
            return [value]
        return list(value.values())
    return [value]


class RegoEngine:
    """The compiled Rego policies of one command; thread-safe (each interpreter has a lock)."""

    def __init__(
        self,
        modules: Sequence[RegoModule],
        rules: Sequence[RegoRule],
        *,
        full_input: bool = False,
        workers: int | None = None,
    ) -> None:
        _require_regopy("a .rego policy")
        self.modules = list(modules)
        self.rules = list(rules)
        scans = [reach.Scan.of(m) for m in self.modules]
        self.projection = reach.Projection(scans, full=full_input)
        # per rule: the modules its query can run code from, and the input they can reach
        linked = reach.closures(scans)
        self._rule_scans: list[list[reach.Scan]] = []
        for rule in self.rules:
            homes = [i for i, m in enumerate(self.modules) if m.package == rule.package and rule.name in m.rules]
            reached = sorted(set().union(*(linked[i] for i in homes))) if homes else range(len(scans))
            self._rule_scans.append([scans[i] for i in reached])
        self._own = [reach.Projection(sc, full=full_input) for sc in self._rule_scans]
        n = workers if workers is not None else min(4, os.cpu_count() or 1)
        self.workers = max(1, min(n, len(self.rules) or 1))
        self._interpreters = [_new_interpreter(self.modules) for _ in range(self.workers)]
        self._locks = [threading.Lock() for _ in self._interpreters]
        #: seconds each rule took on its last full evaluation (scheduling order; 0 until measured)
        self._cost = [0.0] * len(self.rules)
        self._probe()

    def _probe(self) -> None:
        """Run every rule once on an empty input so that unknown functions fail at load, not mid-apply."""
        interp = self._interpreters[0]
        interp.set_input(make_input({}))
        for rule in self.rules:
            try:
                _run_query(interp, rule.query)
            except PolicyEvaluationError as exc:
                raise PolicyLoadError(
                    f"{rule.source}: {exc.message}", location=Location(rule.source, rule.line)
                ) from exc

    def evaluate(
        self, doc: Mapping[str, Any], addresses: Iterable[str] | None = None, *, parallel: bool = True
    ) -> list[Violation]:
        """Every rule once over the whole document; violations attributed to addresses when possible.

        With `parallel`, the rules are spread over the interpreters and queried in threads;
        without, one free interpreter answers them all (for small inputs such as one change).
        """
        return self.start(doc, addresses, parallel=parallel).result()

    def start(
        self, doc: Mapping[str, Any], addresses: Iterable[str] | None = None, *, parallel: bool = True
    ) -> RegoRun:
        """Build the input here, then query in the background; `.result()` waits for the violations.

        Building the input is Python (it holds the GIL) and the queries are C++ (they release it),
        so a caller that has Python work of its own (the built-in rules) does it between the two.
        """
        known = set(addresses) if addresses is not None else {c["address"] for c in doc["changeset"]["changes"]}
        run = RegoRun(self, known)
        if not self.rules:
            return run
        if not parallel or self.workers == 1:
            run.run_serial(make_input(self.projection.apply(doc)))
            return run
        groups = reach.plan_groups(doc, self._own, self._rule_scans, self.workers)
        if groups is None:
            run.run_parallel(make_input(self.projection.apply(doc)), range(len(self.rules)), range(self.workers))
            return run
        # each group's input is built while the groups before it are already querying
        try:
            for group in groups:
                run.run_parallel(make_input(group.projection.apply(doc)), group.rules, group.interpreters)
        except BaseException:
            run.abandon()
            raise
        return run

    def _violation(self, rule: RegoRule, item: Any, known: set[str]) -> Violation:
        details: dict[str, Any] = {}
        policy_id = rule.policy_id
        level = Level.ADVISORY if rule.name.startswith("warn") else rule.level
        address: str | None = None
        if isinstance(item, dict):
            message = str(item.get("msg", item.get("message", json.dumps(item, sort_keys=True))))
            raw_details = item.get("details")
            details = dict(raw_details) if isinstance(raw_details, dict) else {}
            for extra in item.keys() - {"msg", "message", "details", "id", "policy", "level", "address", "resource"}:
                details.setdefault(extra, item[extra])
            address = _str_or_none(item.get("address") or item.get("resource") or details.get("address"))
            if isinstance(item.get("id") or item.get("policy"), str):
                policy_id = str(item.get("id") or item.get("policy"))
            if item.get("level") is not None:
                level = Level.parse(item["level"], where=rule.source)
        else:
            message = item if isinstance(item, str) else json.dumps(item)
        if address is None:
            address = _address_in(message, known)
        return Violation(
            policy_id=policy_id,
            level=level,
            message=message,
            address=address,
            kind=rule.kind,
            source=rule.source,
            line=rule.line,
            details=details,
        )


class RegoRun:
    """One evaluation of a `RegoEngine`'s rules: its query threads and, once joined, its violations."""

    def __init__(self, engine: RegoEngine, known: set[str]) -> None:
        self.engine = engine
        self.known = known
        self._results: dict[int, Any] = {}
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def run_serial(self, rego_input: Any) -> None:
        """All rules on one free interpreter, on this thread (small inputs: threads cost more)."""
        locks = self.engine._locks
        k = next((i for i, lock in enumerate(locks) if lock.acquire(blocking=False)), -1)
        if k < 0:
            k = 0
            locks[0].acquire()
        try:
            interp = self.engine._interpreters[k]
            interp.set_input(rego_input)
            for i, rule in enumerate(self.engine.rules):
                self._results[i] = _run_query(interp, rule.query)
        finally:
            locks[k].release()

    def run_parallel(self, rego_input: Any, rules: Iterable[int], interpreters: Iterable[int]) -> None:
        """Start querying `rules` on `interpreters`, all loaded with `rego_input`, in threads."""
        # Rules differ tenfold in cost, so a fixed split leaves one interpreter idle: each
        # interpreter takes the next rule from a queue ordered by what the rule cost last time.
        engine = self.engine
        pending = sorted(rules, key=lambda i: -engine._cost[i])
        take = threading.Lock()

        def drain(k: int) -> None:
            try:
                with engine._locks[k]:
                    interp = engine._interpreters[k]
                    interp.set_input(rego_input)
                    while True:
                        with take:
                            if not pending:
                                return
                            i = pending.pop(0)
                        started = time.perf_counter()
                        self._results[i] = _run_query(interp, engine.rules[i].query)
                        engine._cost[i] = time.perf_counter() - started
            except BaseException as exc:  # re-raised by result() on the caller's thread
                with take:
                    pending.clear()
                self._errors.append(exc)

        for k in interpreters:
            thread = threading.Thread(target=drain, args=(k,), name=f"rego-{k}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def abandon(self) -> None:
        """Wait for the queries already started, keeping none of their results."""
        for thread in self._threads:
            thread.join()
        self._results.clear()

    def result(self) -> list[Violation]:
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]
        violations: list[Violation] = []
        for i, rule in enumerate(self.engine.rules):
            if i in self._results:
                violations.extend(self.engine._violation(rule, item, self.known) for item in _items(self._results[i]))
        return violations


def _str_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


_WORD_RE = re.compile(r"[^\s'\"`,;()]+")


def _address_in(message: str, known: set[str]) -> str | None:
    """The first change address a string message names as a word (Conftest messages are text)."""
    words: list[str] = _WORD_RE.findall(message)
    for word in words:
        for candidate in (word, word.rstrip(":.!?")):
            if candidate in known:
                return candidate
    return None


def rego_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.rego") if p.is_file())
    return [path]


def read_module(path: Path, shown: str) -> RegoModule:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyLoadError(f"policy file {shown} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"cannot read policy file {shown}: {exc}") from exc
    return RegoModule.parse(shown, text)


def run_rego_tests(path: str | os.PathLike[str]) -> list[RegoTestResult]:
    """Run the Rego unit tests (`test_*` rules) in a file or folder; `todo_test_*` are skipped.

    A test passes when its rule evaluates to true. Syntax errors raise PolicyLoadError.
    """
    _require_regopy("`policy test`")
    root = Path(path)
    if not root.exists():
        raise PolicyLoadError(f"{root} does not exist")
    modules = [read_module(p, str(p)) for p in rego_files(root)]
    if not modules:
        raise PolicyLoadError(f"no .rego files under {root}")
    interp = _new_interpreter(modules)
    interp.set_input(make_input({}))
    results: list[RegoTestResult] = []
    for mod in modules:
        for name, line in mod.tests.items():
            full = f"data.{mod.package}.{name}"
            if name.startswith("todo_"):
                results.append(RegoTestResult(full, mod.file, line, passed=False, skipped=True))
                continue
            try:
                value = _run_query(interp, full)
            except PolicyEvaluationError as exc:
                results.append(RegoTestResult(full, mod.file, line, passed=False, error=exc.message))
                continue
            results.append(RegoTestResult(full, mod.file, line, passed=value is True))
    return results
