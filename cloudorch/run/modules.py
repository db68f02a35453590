"""`cloudorch modules update`: re-resolve the refs of a plan's git modules and rewrite its lock file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudorch.planfile.modsource import LOCK_FILE, updating
from cloudorch.run.options import RunOptions
from cloudorch.run.session import read_plan


def modules_update(opts: RunOptions) -> dict[str, Any]:
    """Load the plan with every git module ref resolved afresh; the lock file it writes, as JSON."""
    with updating():
        read_plan(opts)
    lock = Path(opts.plan_file).parent / LOCK_FILE
    doc: dict[str, Any] = json.loads(lock.read_text("utf-8")) if lock.exists() else {"version": 1, "modules": {}}
    return {"lock_file": str(lock), "modules": doc.get("modules", {})}
