"""The journal of remote state: objects beside the state document, one per group-committed batch.

A run's journal is `PREFIX/KEY.journal/RUN/00000000`, `.../00000001`, ...: each batch of lines is a
new object created only if absent (the store's `if-none-match` precondition), so a batch is
written in one conditional request and nothing ever overwrites a line. Reading joins a run's
objects in order (the lines' hash chain, checked in `cloudorch.state.journal`, finds a gap).
Removing a run after recovery first creates a `closed` line at the next free number and keeps it
(with the lines this recovery added): a writer that lost its lock and wakes up finds its next
number taken and is refused, instead of starting a journal nobody would read. A run that ended
cleanly is removed whole. Only the `ObjectStore` interface is used: no SDK here.
"""

from __future__ import annotations

from cloudorch.errors import StateError
from cloudorch.state.backends.store import ObjectStore, PreconditionFailed
from cloudorch.state.journal import JournalStore, StoredRun

_DIGITS = 8


class ObjectJournalStore(JournalStore):
    """Journal runs under `prefix` (ending with `/`) in `store`."""

    # a write is a round trip: gather the lines of operations running together into one object
    batch_window = 0.002
    defer_results = True

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.writes = 0
        #: run id -> the first number this process wrote in it (what `remove` keeps after recovery)
        self._first_own: dict[str, int] = {}

    def describe(self) -> str:
        return self.store.url(self.prefix)

    def _name(self, run_id: str, seq: int) -> str:
        return f"{self.prefix}{run_id}/{seq:0{_DIGITS}d}"

    def _segments(self) -> dict[str, list[tuple[int, str]]]:
        runs: dict[str, list[tuple[int, str]]] = {}
        for name in self.store.list_names(self.prefix):
            run_id, _, seq = name[len(self.prefix) :].partition("/")
            if run_id and seq.isdigit():
                runs.setdefault(run_id, []).append((int(seq), name))
        for segments in runs.values():
            segments.sort()
        return runs

    def runs(self) -> list[StoredRun]:
        out: list[StoredRun] = []
        for run_id, segments in sorted(self._segments().items()):
            parts: list[bytes] = []
            for _, name in segments:
                got = self.store.get(name)
                if got is not None:
                    parts.append(got.data)
            out.append(StoredRun(run_id, b"".join(parts), self.store.url(self.prefix + run_id), segments[-1][0] + 1))
        return out

    def begin(self, run_id: str, data: bytes) -> StoredRun:
        run = StoredRun(run_id, b"", self.store.url(self.prefix + run_id), 0)
        self.append(run, data)
        return run

    def append(self, run: StoredRun, data: bytes) -> None:
        name = self._name(run.run_id, run.cursor)
        try:
            self.store.put(name, data, if_token=None)
        except PreconditionFailed:
            raise StateError(
                f"refusing to write the journal {run.where}: line batch {run.cursor} exists already, so another "
                "process wrote this run's journal (it recovered it after this command lost its lock); "
                "nothing was written",
                hint="This command no longer holds the state lock. Run `cloudorch plan` to see where things stand.",
            ) from None
        self._first_own.setdefault(run.run_id, run.cursor)
        run.cursor += 1
        self.writes += 1

    def remove(self, run: StoredRun, *, closing: bytes | None = None) -> None:
        if closing is None:
            # our own run, ended: its lines go, the end line last (a crash midway leaves a run that ended)
            if self._first_own.get(run.run_id) == 0:
                names = [self._name(run.run_id, seq) for seq in range(run.cursor)]  # all written here
            else:
                names = [n for _, n in self._segments().get(run.run_id, [])]
            if len(names) > 1:
                self.store.delete_many(names[:-1])
            if names:
                self.store.delete_many(names[-1:])
            return
        segments = self._segments().get(run.run_id, [])
        self.append(run, closing)
        keep_from = self._first_own.get(run.run_id, run.cursor - 1)
        stale = [n for seq, n in segments if seq < keep_from]
        if stale:
            self.store.delete_many(stale)
