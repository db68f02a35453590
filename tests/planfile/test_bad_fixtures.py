"""Every file in tests/fixtures/planfile/bad/ is one bad input; its header says what must happen.

Header lines: `# error: <text in the message>`, optional `# field: <dotted path>` and
`# hint: <text in the hint>`. The line marked `# <-` is the line the error must point at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloudorch.errors import ConfigError
from cloudorch.planfile import check_types, expand, load_plan
from cloudorch.provider.registry import Registry

from .conftest import BAD

_HEADER = re.compile(r"^# (error|field|hint): (.*?)(?:\s+# <-)?$")


def _expectation(path: Path) -> tuple[dict[str, str], int | None]:
    headers: dict[str, str] = {}
    marked: int | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            headers[m.group(1)] = m.group(2)
        if line.rstrip().endswith("# <-"):
            marked = number
    return headers, marked


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_plan_is_a_located_config_error(path: Path, registry: Registry) -> None:
    headers, line = _expectation(path)
    assert "error" in headers, f"{path.name} has no `# error:` header"
    with pytest.raises(ConfigError) as info:
        plan = load_plan(path, env={})
        check_types(plan, registry, expand(plan))
    err = info.value
    assert headers["error"] in err.message
    assert err.location is not None
    assert err.location.file == str(path)
    assert err.location.line == line, f"{err} (hint: {err.hint})"
    assert err.location.column is not None
    if "field" in headers:
        assert err.location.field == headers["field"]
    if "hint" in headers:
        assert err.hint is not None and headers["hint"] in err.hint


def test_every_bad_fixture_marks_its_line() -> None:
    for path in BAD.glob("*.yaml"):
        assert _expectation(path)[1] is not None, path.name
