"""Signals belong to the command line: while an operation runs cloud work, Ctrl-C and SIGTERM fire
its interrupt (start nothing new, let running operations finish, save state) instead of raising."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cloudorch.api import Interrupt


class SignalInterrupt(Interrupt):
    """An `Interrupt` that SIGINT and SIGTERM fire while the operation has it armed."""

    @contextmanager
    def armed(self) -> Iterator[None]:
        old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, lambda _s, _f: self.fire())
        try:
            yield
        finally:
            for signum, handler in old.items():
                signal.signal(signum, handler)
