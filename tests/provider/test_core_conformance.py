"""The conformance kit on the `core` types: the generated checks of `cloudorch.testing.conformance`.

The core types have no SDK calls, so the fault and crash checks are `n/a` for them; the kit's own
tests (tests/testing/) run those on a provider with a fault seam.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceExample, ConformanceSuite


def _file_census(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return int((Path(rt.provider.context.plan_dir) / props["path"]).is_file())


def _edit_file(rt: ResourceType[Any], seen: Observed) -> None:
    Path(seen.id).write_text("edited by hand\n")


class TestCoreConformance(ConformanceSuite):
    examples = (
        ConformanceExample(
            type="core.null",
            minimal={"values": {"owner": "web"}},
            full={"values": {"owner": "web", "env": "dev"}, "triggers": {"version": "1"}},
            updates={"values": {"owner": "data", "env": "dev"}},
            force_new={"triggers": {"version": "2"}},
            # there is no cloud to read a null resource's values back from
            import_ignore=("values", "triggers"),
            stateless=True,
        ),
        ConformanceExample(
            type="core.file",
            minimal={"path": "out/{run}.txt", "content": "hello\n"},
            full={"path": "out/{run}.txt", "content": "hello\n", "mode": "0640"},
            updates={"content": "goodbye\n", "mode": "0600"},
            force_new={"path": "out/{run}-moved.txt"},
            drift=_edit_file,
            census=_file_census,
        ),
        ConformanceExample(
            type="core.wait",
            minimal={"seconds": 0},
            updates={"seconds": 0.001},
            stateless=True,
        ),
    )
