"""Benchmark: in-process timings of library calls that the tests used to assert on the clock.

The tests keep asserting the behaviour (the write lands, the chain is scheduled first, the lock
waits for its timeout and names the holder); how long each takes is measured here, against the
figures the tests once held:

| case | figure | target |
|---|---|---|
| state | `LocalBackend.write` of 5,000 resources, best of 3 | < 0.3 s |
| state | `LocalBackend.read` of the same, best of 3 | < 0.3 s |
| lock | a second `lock(timeout=0.5)` against a held lock, until it gives up | 0.5 s to < 3 s |
| scheduler | chain 10 + wide 40 tasks of 20 ms, `parallelism=5` | < 1.6 x the ideal time |

Run: `.venv/bin/python bench/library_bench.py [--repeat N]` (or `bash bench/run library_bench.py`).
Prints one table; the exit status is 1 if any figure misses its target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudorch.engine.scheduler import Scheduler, Task  # noqa: E402
from cloudorch.state import LocalBackend, LockHeldError, LockInfo, ResourceRecord, State  # noqa: E402


@dataclass
class Row:
    case: str
    figure: str
    measured: float
    low: float
    high: float

    @property
    def ok(self) -> bool:
        return self.low <= self.measured < self.high

    def target(self) -> str:
        return f"< {self.high:.3g}" if self.low <= 0 else f"{self.low:.3g} .. < {self.high:.3g}"


def _state(n: int) -> State:
    state = State(plan_name="shop", serial=1)
    for i in range(n):
        address = f"prod.r{i}"
        state.resources[address] = ResourceRecord(
            address=address,
            type="aws.s3_bucket",
            provider="aws",
            id=f"id-{address}",
            properties={f"p{j}": f"value-{address}-{j}" for j in range(10)},
            attributes={"arn": f"arn:aws:s3:::{address}"},
        )
    return state


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def case_state(tmp: Path, repeat: int) -> list[Row]:
    backend = LocalBackend(tmp / "state", "shop")
    state = _state(5000)
    backend.write(state, None)  # warm up imports and directories
    writes, reads = [], []
    for serial in range(2, 2 + max(repeat, 3)):
        state.serial = serial
        writes.append(_timed(lambda s=serial: backend.write(state, s - 1)))
        reads.append(_timed(backend.read))
    return [
        Row("state", "write 5,000 resources, best (s)", min(writes), 0.0, 0.3),
        Row("state", "read 5,000 resources, best (s)", min(reads), 0.0, 0.3),
    ]


def case_lock(tmp: Path, repeat: int) -> list[Row]:
    backend = LocalBackend(tmp / "lock", "shop")
    waits = []
    with backend.lock(LockInfo.new("cloudorch apply"), timeout=1):
        for _ in range(repeat):
            started = time.perf_counter()
            try:
                backend.lock(LockInfo.new("cloudorch plan"), timeout=0.5)
            except LockHeldError:
                waits.append(time.perf_counter() - started)
            else:  # pragma: no cover - a broken lock
                raise SystemExit("the second lock was granted while the first was held")
    return [Row("lock", "timeout 0.5 s against a held lock, worst (s)", max(waits), 0.5, 3.0)]


def case_scheduler(repeat: int) -> list[Row]:
    spec: dict[str, set[str]] = {f"c{i}": ({f"c{i - 1}"} if i else set()) for i in range(10)}
    spec.update({f"w{i}": set() for i in range(40)})
    bound = max(10 * 0.02, 50 * 0.02 / 5)
    ratios = []
    for _ in range(repeat):
        tasks = [Task(key=k, payload=None, group="g", weight=0.02, after=set(v)) for k, v in spec.items()]
        took = _timed(lambda t=tasks: Scheduler(t, parallelism=5, group_limits={}).run(lambda _t: time.sleep(0.02)))
        ratios.append(took / bound)
    return [Row("scheduler", "chain 10 + wide 40, parallelism 5, best (x ideal)", min(ratios), 0.0, 1.6)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the best or worst counts)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cloudorch-library-bench-") as tmp:
        rows = [*case_state(Path(tmp), args.repeat), *case_lock(Path(tmp), args.repeat), *case_scheduler(args.repeat)]
    width = max(len(r.figure) for r in rows)
    print(f"{'case':<10} {'figure':<{width}} {'measured':>9} {'target':>14}  result")
    for r in rows:
        print(f"{r.case:<10} {r.figure:<{width}} {r.measured:>9.3f} {r.target():>14}  {'PASS' if r.ok else 'FAIL'}")
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} targets pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
