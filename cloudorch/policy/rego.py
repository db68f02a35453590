"""Rego (OPA) policies evaluated with regopy in a confined worker process (`rego_worker`):
Conftest-compatible `deny` / `warn` / `violation` rules, compiled once per command, each rule
queried once per input document.

Owns the worker's side of the boundary: syntax errors with file:line, cutting the input down to
what the rules can reach (see `reach`), the time and memory limits, result normalisation, and
`test_*` rules. It returns `Violation`s; it does not decide what blocks. This process never
loads regopy itself (rego-cpp's allocator reserves 256 GB of address space when it loads).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
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
from cloudorch.policy.rego_worker import UNDEFINED_WIRE, QueryError, make_input, parse_rego_errors, run_query

#: regopy is the `policy` extra: the core works without it (looked up, not imported: see above)
_HAS_REGOPY = importlib.util.find_spec("regopy") is not None

__all__ = ["make_input"]

#: per policy entry (`timeout:`, `max_memory_mb:`); README "Policies" documents these defaults
DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 512
_WORKER_FILE = str(Path(__file__).with_name("rego_worker.py"))

RULE_KINDS = ("deny", "warn", "violation")
_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_RULE_RE = re.compile(r"^((?:deny|warn|violation)(?:_[A-Za-z0-9_]+)?)\b(?!\s*\()", re.MULTILINE)
_TEST_RE = re.compile(r"^((?:todo_)?test_[A-Za-z0-9_]+)\b", re.MULTILINE)
_LEVEL_RE = re.compile(r"^\s*#\s*cloudorch:\s*level\s*[=:]\s*([A-Za-z]+)", re.MULTILINE)
_COMMENT_RE = re.compile(r"#[^\n]*")


def _require_regopy(what: str) -> None:
    if not _HAS_REGOPY:
        raise PolicyLoadError(
            f"{what} needs the Rego engine, which is not installed",
            hint="pip install 'cloudorch[policy]' (it installs regopy)",
        )


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _parse_rego_errors(raw: str) -> list[tuple[str | None, int | None, str]]:
    return parse_rego_errors(raw)


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
    timeout: float = DEFAULT_TIMEOUT  # seconds one query of this rule may run
    max_memory_mb: int = DEFAULT_MEMORY_MB  # memory its evaluation may use beyond the worker's own

    @property
    def named(self) -> str:
        return f"policy `{self.policy_id}` (rule {self.query})"

    @property
    def query(self) -> str:
        return f"data.{self.package}.{self.name}"

    @property
    def kind(self) -> str:
        return f"rego:{self.package}.{self.name}"


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
    """One query's value in this process, `_UNDEFINED`, or PolicyEvaluationError (benchmarks only:
    policies themselves are only ever evaluated in a `_Worker`)."""
    from cloudorch.policy.rego_worker import UNDEFINED

    try:
        value = run_query(interp, query)
    except QueryError as exc:
        raise PolicyEvaluationError(f"Rego error while evaluating {query}: {exc}") from None
    return _UNDEFINED if value is UNDEFINED else value


def _jsonable(value: Any) -> Any:
    """What JSON cannot say, as the Rego input builder would have said it."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


#: (a function making the group's input document, its rules, its interpreters)
_Group = tuple[Callable[[], Any], Iterable[int], Sequence[int]]


class _Worker:
    """One Rego worker process (`rego_worker.py`) and the rules it answers, behind a lock.

    Started with an empty environment; its address space is capped at `memory_mb` beyond its
    own; each query is given its rule's `timeout` from the moment the worker reports starting
    it. A rule over either limit kills the worker and is an error naming the policy; the next
    call starts a new worker.
    """

    def __init__(self, modules: Sequence[RegoModule], rules: Sequence[tuple[int, RegoRule]], threads: int) -> None:
        self.modules = list(modules)
        self.global_ids = [i for i, _ in rules]
        self.rules = [r for _, r in rules]
        self.threads = threads
        self.memory_mb = max((r.max_memory_mb for r in self.rules), default=DEFAULT_MEMORY_MB)
        self.lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._ready = False

    # -- process

    def spawn(self) -> None:
        """Start the process and send it the modules; `ready()` waits for it to compile them."""
        self._buf = b""
        self._ready = False
        self._proc = subprocess.Popen(
            [sys.executable, "-I", _WORKER_FILE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a dying rego-cpp may print; the error says what happened
            env={},  # the point of the worker: opa.runtime().env is empty
            close_fds=True,
        )
        init = {
            "path": [p for p in sys.path if p],
            "modules": [[f"m{i}.rego", m.text] for i, m in enumerate(self.modules)],
            "queries": [r.query for r in self.rules],
            "threads": self.threads,
            "memory": self.memory_mb * 2**20,
        }
        self._write(init)

    def ready(self) -> None:
        """Wait for the worker to have compiled the modules; syntax and unknown-builtin errors."""
        if self._proc is None:
            self.spawn()
        msg = self._read(time.monotonic() + max([30.0, *(r.timeout for r in self.rules)]), running={})
        if "start_error" in msg:
            self.kill()
            first = self.rules[0] if self.rules else None
            where = Location(first.source, first.line) if first else Location(self.modules[0].file, 1)
            raise PolicyLoadError(
                f"{first.named if first else 'the Rego policies'} cannot run: {msg['start_error']}",
                location=where,
                hint="run cloudorch without `ulimit -v` (RLIMIT_AS)",
            )
        if "load_error" in msg:
            self.kill()
            raise _syntax_error(str(msg["load_error"]), {f"m{i}.rego": m for i, m in enumerate(self.modules)})
        if "unknown_calls" in msg:
            self.kill()
            index, name, offset = msg["unknown_calls"][0]
            mod = self.modules[int(index)]
            line, col = _line_col(mod.text, int(offset))
            raise PolicyLoadError(
                f"the policy calls `{name}`, which policies cannot use",
                location=Location(mod.file, line, col),
                hint="cloudorch evaluates Rego without network or environment access (no http.send, "
                "net.*, ...); a call that cannot run would make the rule silently undefined",
            )
        self._ready = True

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def _write(self, message: Mapping[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        data = json.dumps(message, separators=(",", ":"), default=_jsonable).encode() + b"\n"
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died; reading says how

    def _read(self, deadline: float, running: Mapping[int, float]) -> dict[str, Any]:
        """The next message, or an error naming the rules running when the worker stopped."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            now = time.monotonic()
            until = min([deadline, *running.values()])
            ready, _, _ = select.select([fd], [], [], max(0.0, until - now))
            if not ready:
                late = [i for i, d in running.items() if d <= time.monotonic()] or list(running)
                self.kill()
                raise self._over("time", late)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.kill()
                raise self._over("memory", list(running))
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def _over(self, what: str, local: Sequence[int]) -> PolicyEvaluationError:
        rules = [self.rules[i] for i in local]
        if not rules:
            return PolicyEvaluationError(
                "the Rego worker stopped before answering",
                hint="its time or memory limits (`timeout:`, `max_memory_mb:` on the policy entry) may be too low",
            )
        names = ", ".join(r.named for r in rules)
        if what == "time":
            limit = max(r.timeout for r in rules)
            return PolicyEvaluationError(
                f"{names} ran longer than its time limit of {limit:g}s; the evaluation was stopped",
                location=Location(rules[0].source, rules[0].line),
                hint="raise `timeout:` on its entry in `policies:` if the policy is trusted and slow",
            )
        return PolicyEvaluationError(
            f"{names} exceeded its memory limit of {self.memory_mb} MB (or its evaluation crashed); "
            "the evaluation was stopped",
            location=Location(rules[0].source, rules[0].line),
            hint="raise `max_memory_mb:` on its entry in `policies:` if the policy is trusted",
        )

    # -- requests

    def evaluate(self, groups: Sequence[_Group]) -> dict[int, Any]:
        """Query rules (global indices) on inputs; {global index: value or _UNDEFINED}.

        Each group's input is made (projected) only when it is sent, so the worker builds and
        queries one group while the next is being projected here.
        """
        local_of = {g: k for k, g in enumerate(self.global_ids)}
        mine = [([local_of[i] for i in rules if i in local_of], make, interps) for make, rules, interps in groups]
        mine = [g for g in mine if g[0]]
        if not mine:
            return {}
        with self.lock:
            if self._proc is None:
                self.spawn()
            if not self._ready:
                self.ready()
            self._write({"op": "eval", "groups": len(mine)})
            for rules, make, interpreters in mine:
                self._write({"input": make(), "rules": rules, "interpreters": list(interpreters)})
            return self._collect()

    def _collect(self) -> dict[int, Any]:
        results: dict[int, Any] = {}
        errors: list[tuple[int, str]] = []
        running: dict[int, float] = {}
        idle = max(r.timeout for r in self.rules)
        while True:
            msg = self._read(time.monotonic() + idle, running)
            if "start" in msg:
                i = int(msg["start"])
                running[i] = time.monotonic() + self.rules[i].timeout
            elif "done" in msg:
                i = int(msg["done"])
                running.pop(i, None)
                value = msg["value"]
                results[self.global_ids[i]] = _UNDEFINED if value == UNDEFINED_WIRE else value
            elif "error" in msg:
                i = int(msg["error"])
                running.pop(i, None)
                errors.append((i, str(msg["message"])))
            elif "memory" in msg:
                self.kill()
                raise self._over("memory", [int(msg["memory"])])
            elif msg.get("end"):
                break
        if errors:
            i, message = errors[0]
            rule = self.rules[i]
            raise PolicyEvaluationError(
                f"{rule.named}: Rego error while evaluating {rule.query}: {message}",
                location=Location(rule.source, rule.line),
            )
        return results


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
    """The Rego policies of one command, compiled in worker processes; thread-safe.

    Rules are grouped by memory limit, one worker process per group (usually one); the worker
    runs `workers` interpreters in threads. Building the input and attributing results stay here.
    """

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
        by_memory: dict[int, list[tuple[int, RegoRule]]] = {}
        for i, rule in enumerate(self.rules):
            by_memory.setdefault(rule.max_memory_mb, []).append((i, rule))
        self._processes = [_Worker(self.modules, group, self.workers) for group in by_memory.values()]
        if not self._processes:
            self._processes = [_Worker(self.modules, [], 1)]
        for proc in self._processes:  # compile in parallel with each other and with the caller
            proc.spawn()
        self._probe()

    def _probe(self) -> None:
        """Compile, then run every rule once on an empty input, so that a policy that cannot
        load or run fails here (with its file), not mid-apply."""
        for proc in self._processes:
            with proc.lock:
                proc.ready()
        if not self.rules:
            return
        try:
            self._query([(dict, range(len(self.rules)), [0])])
        except PolicyEvaluationError as exc:
            raise PolicyLoadError(exc.message, location=exc.location, hint=exc.hint) from exc

    def close(self) -> None:
        """Stop the worker processes (they also stop when this process exits)."""
        for proc in self._processes:
            with proc.lock:
                proc.kill()

    def _query(self, groups: Sequence[_Group]) -> dict[int, Any]:
        fixed = [(make, list(rules), list(interps)) for make, rules, interps in groups]
        results: dict[int, Any] = {}
        if len(self._processes) == 1:
            results.update(self._processes[0].evaluate(fixed))
            return results
        errors: list[BaseException] = []

        def one(proc: _Worker) -> None:
            try:
                results.update(proc.evaluate(fixed))
            except BaseException as exc:  # re-raised below on the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(p,), daemon=True) for p in self._processes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results

    def evaluate(
        self, doc: Mapping[str, Any], addresses: Iterable[str] | None = None, *, parallel: bool = True
    ) -> list[Violation]:
        """Every rule once over the whole document; violations attributed to addresses when possible.

        With `parallel`, the rules are spread over the worker's interpreters and queried in
        threads; without, one interpreter answers them all (for small inputs such as one change).
        """
        return self.start(doc, addresses, parallel=parallel).result()

    def start(
        self, doc: Mapping[str, Any], addresses: Iterable[str] | None = None, *, parallel: bool = True
    ) -> RegoRun:
        """Project the input here, then query in the background; `.result()` waits for the violations.

        The queries run in the worker process, so a caller that has Python work of its own (the
        built-in rules) does it between the two.
        """
        known = set(addresses) if addresses is not None else {c["address"] for c in doc["changeset"]["changes"]}
        run = RegoRun(self, known)
        if not self.rules:
            return run
        every = range(len(self.rules))
        whole: Callable[[], Any] = lambda: self.projection.apply(doc)  # noqa: E731
        groups: list[_Group]
        if not parallel or self.workers == 1:
            groups = [(whole, every, [0])]
        else:
            planned = reach.plan_groups(doc, self._own, self._rule_scans, self.workers)
            if planned is None:
                groups = [(whole, every, range(self.workers))]
            else:
                groups = [(partial(g.projection.apply, doc), g.rules, g.interpreters) for g in planned]
        run.begin(groups, background=parallel)
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
    """One evaluation of a `RegoEngine`'s rules: the worker's answers and, once joined, its violations."""

    def __init__(self, engine: RegoEngine, known: set[str]) -> None:
        self.engine = engine
        self.known = known
        self._results: dict[int, Any] = {}
        self._errors: list[BaseException] = []
        self._thread: threading.Thread | None = None

    def begin(self, groups: Sequence[_Group], *, background: bool) -> None:
        def run() -> None:
            try:
                self._results = self.engine._query(groups)
            except BaseException as exc:  # re-raised by result() on the caller's thread
                self._errors.append(exc)

        if not background:
            run()
            return
        self._thread = threading.Thread(target=run, name="rego", daemon=True)
        self._thread.start()

    def result(self) -> list[Violation]:
        if self._thread is not None:
            self._thread.join()
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
    tests = [
        (mod, name, line, RegoRule(mod.package, name, name, Level.ADVISORY, mod.file, line))
        for mod in modules
        for name, line in mod.tests.items()
    ]
    runnable = [(i, t[3]) for i, t in enumerate(tests) if not t[1].startswith("todo_")]
    worker = _Worker(modules, runnable, 1)
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    try:
        with worker.lock:
            worker.ready()
        for i, _ in runnable:  # one at a time: an error or a limit fails that test, not the run
            try:
                values.update(worker.evaluate([(dict, [i], [0])]))
            except PolicyEvaluationError as exc:
                errors[i] = exc.message
    finally:
        worker.kill()
    results: list[RegoTestResult] = []
    for i, (mod, name, line, _) in enumerate(tests):
        full = f"data.{mod.package}.{name}"
        if name.startswith("todo_"):
            results.append(RegoTestResult(full, mod.file, line, passed=False, skipped=True))
        elif i in errors:
            results.append(RegoTestResult(full, mod.file, line, passed=False, error=errors[i]))
        else:
            results.append(RegoTestResult(full, mod.file, line, passed=values.get(i) is True))
    return results
