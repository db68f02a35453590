"""The Rego worker: a child process that compiles and queries Rego policies, and nothing else.

Rego policies can come from a pull request, so they are evaluated away from cloudorch's own
process: the worker starts with an empty environment (rego-cpp's `opa.runtime()` returns the
process environment, which in CI holds cloud credentials), bounds its own address space
(`RLIMIT_AS`), and is killed by `cloudorch.policy.rego` when a rule runs past its time limit.
It imports only the standard library and regopy, so it starts in a fraction of a second, and it
never reads a file: the parent sends the modules and every input over stdin as JSON lines.
"""

from __future__ import annotations

import ctypes
import json
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

#: what `run_query` returns for an undefined result
UNDEFINED: Any = object()

#: the worker answers this for an undefined value (JSON has no word for it)
UNDEFINED_WIRE = {"$cloudorch": "undefined"}

#: dotted calls that are not builtins of rego-cpp yet parse: they evaluate to undefined, which
#: would let a policy that depends on them pass, so loading such a policy is an error
_CALL_RE = re.compile(r"(?<![\w.\]])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\s*\(")
_IMPORT_RE = re.compile(r"^\s*import\s+([\w.\[\]\"]+)(?:\s+as\s+(\w+))?", re.MULTILINE)
_STRIP_RE = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|`[^`]*`')


class QueryError(Exception):
    """A Rego query failed at run time; the message is rego-cpp's."""


def parse_rego_errors(raw: str) -> list[tuple[str | None, int | None, str]]:
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


def unknown_calls(text: str, is_builtin: Any) -> list[tuple[str, int]]:
    """(name, char offset) of each dotted call in a module that is neither a builtin nor `data.`/an import."""
    stripped = _STRIP_RE.sub(lambda m: " " * len(m.group(0)), text)
    aliases = {"data", "input"}
    for m in _IMPORT_RE.finditer(stripped):
        path = m.group(1)
        aliases.add(m.group(2) or re.split(r"[.\[]", path)[-1].strip('"'))
    found: list[tuple[str, int]] = []
    for m in _CALL_RE.finditer(stripped):
        name = m.group(1)
        if name.split(".", 1)[0] in aliases or is_builtin(name):
            continue
        found.append((name, m.start(1)))
    return found


class _Builder:
    """rego-cpp's input-builder calls as private ctypes function objects.

    `regopy.rego_shared` declares the same functions; these are separate objects (so regopy's
    own declarations are untouched) with argument types that take Python values directly.
    """

    def __init__(self, lib: Any) -> None:
        vp = ctypes.c_void_p

        def fn(name: str, *argtypes: Any) -> Any:
            f = lib[name]  # CDLL item access returns a new function object each time
            f.argtypes = argtypes
            f.restype = ctypes.c_uint
            return f

        self.lib = lib
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
    import regopy
    from regopy.rego_shared import rego as lib

    global _BUILDER
    if _BUILDER is None:
        _BUILDER = _Builder(lib)
    b = _BUILDER
    put_str, put_int, put_float, put_bool, put_null = b.string, b.int, b.float, b.bool, b.null
    put_item, put_object, put_array = b.item, b.object, b.array
    raw = lib.regoNewInput()
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
        lib.regoFreeInput(raw)
        raise
    if status:
        lib.regoFreeInput(raw)
        raise QueryError("could not build the Rego input document")
    out = regopy.Input.__new__(regopy.Input)
    out._impl = raw
    return out


def run_query(interp: Any, query: str) -> Any:
    """One query's value, `UNDEFINED`, or QueryError (regopy's Output chokes on errors)."""
    from regopy.rego_shared import rego as lib
    from regopy.rego_shared import rego_free_output, rego_get_error, rego_output_ok, rego_output_string

    impl = lib.regoQuery(interp._impl, query.encode())
    if not impl:  # regopy's own rego_query misses this case (it compares the pointer with 0)
        raise QueryError(str(rego_get_error(interp._impl)))
    try:
        text = rego_output_string(impl)
        ok = rego_output_ok(impl)
    finally:
        rego_free_output(impl)
    if text == "undefined":
        return UNDEFINED
    if not ok or text.lstrip().startswith("("):
        errors = parse_rego_errors(text)
        raise QueryError("; ".join(m for _, _, m in errors) or text.strip())
    value = json.loads(text)
    results = value if isinstance(value, list) else [value]
    if not results or not results[0].get("expressions"):
        return UNDEFINED
    return results[0]["expressions"][0]


def new_interpreter(modules: list[tuple[str, str]]) -> Any:
    """An interpreter with `modules` ((name, text) pairs) added; regopy.RegoError on a syntax error."""
    import regopy

    interp = regopy.Interpreter()
    interp.log_level = regopy.LogLevel.NONE  # rego-cpp would otherwise print errors to stdout
    for name, text in modules:
        interp.add_module(name, text)
    return interp


# --------------------------------------------------------------------------- the worker process


def _vm_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    return int(m.group(1)) * 1024 if m else 0


class _Worker:
    def __init__(self, out: TextIO, init: dict[str, Any]) -> None:
        self.out = out
        self.write_lock = threading.Lock()
        self.queries: list[str] = init["queries"]
        modules = [(str(n), str(t)) for n, t in init["modules"]]
        self.interpreters = [new_interpreter(modules) for _ in range(max(1, int(init["threads"])))]
        self.ceiling = 0
        self.slack = 0

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":"))
        with self.write_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def bound_memory(self, budget: int) -> None:
        """Cap the address space at what the worker uses now plus `budget` bytes (and thread stacks)."""
        import resource

        # rego-cpp turns an allocation that fails inside a builtin into an undefined value, so
        # a query that hit the cap looks like a pass: after each query, a peak close to the cap
        # is reported as the limit being exceeded (the slack is larger than a typical failing
        # growth step, smaller than what any real policy leaves unused)
        self.ceiling = _vm_bytes("VmSize") + budget + 16 * 2**20 * len(self.interpreters)
        self.slack = max(32 * 2**20, budget // 8)
        resource.setrlimit(resource.RLIMIT_AS, (self.ceiling, self.ceiling))

    def over_memory(self) -> bool:
        return bool(self.ceiling) and _vm_bytes("VmPeak") >= self.ceiling - self.slack

    def query(self, k: int, i: int) -> None:
        """Query rule `i` on interpreter `k` and report it: start, then done/error/memory."""
        self.send({"start": i})
        try:
            value = run_query(self.interpreters[k], self.queries[i])
        except QueryError as exc:
            self.send({"error": i, "message": str(exc)})
            return
        except MemoryError:
            value = UNDEFINED
        if self.over_memory():
            self.send({"memory": i})
            sys.exit(3)  # the address space is spent: the parent starts a new worker if needed
        self.send({"done": i, "value": UNDEFINED_WIRE if value is UNDEFINED else value})

    def evaluate(self, stdin: TextIO, count: int) -> None:
        """Read `count` groups and query each one's rules on its interpreters; a group's input is
        read and built (Python, holding the GIL) while the groups before it query (C++, which
        releases it)."""
        threads: list[threading.Thread] = []
        for _ in range(count):
            group = json.loads(stdin.readline())
            rego_input = make_input(group["input"])
            interpreters = [k for k in group["interpreters"] if k < len(self.interpreters)] or [0]
            pending = list(group["rules"])
            take = threading.Lock()

            def drain(k: int, rego_input: Any = rego_input, pending: list[int] = pending, take: Any = take) -> None:
                self.interpreters[k].set_input(rego_input)
                while True:
                    with take:
                        if not pending:
                            return
                        i = pending.pop(0)
                    self.query(k, i)

            if count == 1 and len(interpreters) == 1:
                drain(interpreters[0])
                continue
            for k in interpreters:
                thread = threading.Thread(target=drain, args=(k,), daemon=True)
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()


#: what rego-cpp's allocator (snmalloc) reserves when regopy loads; with less, it aborts
_RESERVED = 256 * 2**30


def _make_room() -> str | None:
    """Lift an inherited address-space limit (`ulimit -v`) for the allocator's reservation.

    The limit cannot bound this process anyway (the reservation alone exceeds any useful one);
    `_Worker.bound_memory` sets the real bound, relative to what is mapped, once regopy is loaded.
    Returns why the worker cannot start, or None.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return None
    except (ValueError, OSError):  # an unprivileged process cannot raise its hard limit
        pass
    if hard == resource.RLIM_INFINITY or hard > _RESERVED + 2**30:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return None
    return (
        f"the Rego engine cannot start under an address-space limit of {hard // 2**20} MB (ulimit -v): "
        "rego-cpp's allocator reserves 256 GB of address space; cloudorch bounds each policy's "
        "memory itself (`max_memory_mb`)"
    )


def main() -> None:
    """Serve the parent: one JSON request a line on stdin, JSON replies a line on stdout."""
    stdin, stdout = sys.stdin, sys.stdout
    init = json.loads(stdin.readline())
    sys.path[:0] = [p for p in init.get("path", []) if p not in sys.path]
    problem = _make_room()
    if problem:
        stdout.write(json.dumps({"start_error": problem}) + "\n")
        stdout.flush()
        return
    import regopy

    try:
        worker = _Worker(stdout, init)
    except regopy.RegoError as exc:
        stdout.write(json.dumps({"load_error": str(exc)}) + "\n")
        stdout.flush()
        return
    probe = worker.interpreters[0]
    unknown = [
        [index, name, offset]
        for index, (_, text) in enumerate(init["modules"])
        for name, offset in unknown_calls(str(text), probe.is_builtin)
    ]
    if unknown:
        worker.send({"unknown_calls": unknown})
        return
    worker.bound_memory(int(init["memory"]))
    worker.send({"ready": True})
    for line in stdin:
        request = json.loads(line)
        if request.get("op") == "eval":
            worker.evaluate(stdin, int(request["groups"]))
        worker.send({"end": True})


if __name__ == "__main__":
    main()
