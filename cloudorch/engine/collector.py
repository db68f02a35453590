"""The cyclic garbage collector during one plan or apply: off, and what the run keeps is frozen.

A run builds a few large, long-lived, acyclic structures (the plan's values, state, the changeset,
the operation graph: millions of objects for 20,000 resources) and frees them by reference
counting. The collector finds nothing in them, but each full collection walks all of them again,
and a large run triggers many: about a third of a no-change plan's CPU. So the collector is off for
the run, and at its end what is alive is frozen (`gc.freeze`), so later collections of the same
process (the CLI printing its result) do not walk it either.

A long-lived process (a fleet worker running stack after stack) would keep the cyclic garbage of
every run frozen: once the frozen objects have grown to twice what the last collection left, a
run starts by giving them back to the collector and collecting, as CPython itself collects its
oldest generation only when it has grown by a share (a full collection costs the whole heap).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: frozen objects after the last collection this module made (0: none made yet)
_baseline = 0
#: `_baseline` is to be taken when the next run starts: counting the frozen objects walks every one
#: of them (millions at the end of a large run), while at the next start the count is taken anyway.
#: The first run takes what the process froze before it (the CLI freezes what its imports made)
_count_at_start = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off; nested uses (and a collector already off) are no-ops."""
    global _baseline, _count_at_start
    if not gc.isenabled():
        yield
        return
    frozen = gc.get_freeze_count()
    if _count_at_start:
        _baseline, _count_at_start = frozen, False
    if frozen and frozen > 2 * _baseline:
        gc.unfreeze()
        gc.collect()
        _baseline = 0
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if not _baseline:
            _count_at_start = True
        gc.enable()
