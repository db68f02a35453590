#!/usr/bin/env python3
"""How the maintained Python CEL libraries do on the plan language's workload (README, "Expressions").

Run with an interpreter that has the candidates installed (they are not all dependencies):

    python -m venv /tmp/cel && /tmp/cel/bin/pip install cel-python common-expression-language cel-expr-python
    /tmp/cel/bin/python bench/cel_candidates.py

Each candidate runs in its own process (so imports are counted apart): the import; compile and
evaluate N small distinct expressions (`prod ? upper("web-" + key + "-i") : join(["a", key], "-")`,
with two functions of ours, as a plan with many resources does); evaluate one compiled program N
times. A candidate that is not installed is reported as such.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

N = 5000
CANDIDATES = ("cel-python", "common-expression-language", "cel-expr-python")

_CHILD = textwrap.dedent(
    """
    import sys, time
    lib, N = sys.argv[1], int(sys.argv[2])
    exprs = [f'prod ? upper("web-" + key + "-{i}") : join(["a", key], "-")' for i in range(N)]
    def upper(s): return s.upper()
    def join(xs, sep): return sep.join(xs)
    t0 = time.perf_counter()
    if lib == "cel-python":
        import celpy
        from celpy import celtypes
        env = celpy.Environment()
        t1 = time.perf_counter()
        funcs = {"upper": lambda s: celtypes.StringType(str(s).upper()),
                 "join": lambda xs, sep: celtypes.StringType(str(sep).join(str(x) for x in xs))}
        act = {"prod": celtypes.BoolType(True), "key": celtypes.StringType("k1")}
        for e in exprs:
            env.program(env.compile(e), functions=funcs).evaluate(act)
        t2 = time.perf_counter()
        prg = env.program(env.compile(exprs[0]), functions=funcs)
        for _ in range(N): prg.evaluate(act)
    elif lib == "common-expression-language":
        import cel
        t1 = time.perf_counter()
        ctx = cel.Context(variables={"prod": True, "key": "k1"}, functions={"upper": upper, "join": join})
        for e in exprs:
            cel.compile(e).execute(ctx)
        t2 = time.perf_counter()
        p = cel.compile(exprs[0])
        for _ in range(N): p.execute(ctx)
    else:
        from cel_expr_python import cel
        T = cel.Type
        t1 = time.perf_counter()
        env = cel.NewEnv(variables={"prod": T.BOOL, "key": T.STRING}, functions=[
            cel.FunctionDecl("upper", [cel.Overload("upper_string", T.STRING, [T.STRING], impl=upper)]),
            cel.FunctionDecl("join", [cel.Overload("join_list_string", T.STRING,
                                                   [T.List(T.STRING), T.STRING], impl=join)]),
        ])
        data = {"prod": True, "key": "k1"}
        for e in exprs:
            env.compile(e).eval(data=data).value()
        t2 = time.perf_counter()
        p = env.compile(exprs[0])
        for _ in range(N): p.eval(data=data)
    t3 = time.perf_counter()
    print(f"{t1 - t0:.3f} {(t2 - t1) / N * 1e6:.0f} {(t3 - t2) / N * 1e6:.1f}")
    """
)


def main() -> int:
    print(f"{'library':<28}{'import':>10}{'compile+eval':>15}{'eval':>10}   (N={N})")
    for lib in CANDIDATES:
        proc = subprocess.run([sys.executable, "-c", _CHILD, lib, str(N)], capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"{lib:<28}{'-':>10}{'-':>15}{'-':>10}   {last[:60]}")
            continue
        imp, both, ev = proc.stdout.split()
        print(f"{lib:<28}{float(imp):>9.3f}s{both:>12} µs{ev:>7} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
