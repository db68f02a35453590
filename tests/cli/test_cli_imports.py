"""The CLI is a skin over the facade: its modules import, of cloudorch, only `cloudorch.api`, the
errors, the Markdown escaper and each other (type-only imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import cloudorch

ALLOWED = ("cloudorch.api", "cloudorch.errors", "cloudorch.markdown", "cloudorch.cli")
ROOT = Path(cloudorch.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "cloudorch":
                found |= {f"cloudorch.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return {m for m in found if m == "cloudorch" or m.startswith("cloudorch.")}


def test_cli_imports_only_the_facade() -> None:
    wrong = {
        f"{path.name}: {module}"
        for path in sorted((ROOT / "cli").glob("*.py"))
        for module in _imports(path)
        if not module.startswith(ALLOWED) and module != "cloudorch.__version__"
    }
    assert not wrong, sorted(wrong)


def test_release_and_run_never_import_the_facade_or_the_cli() -> None:
    wrong = {
        f"{path.relative_to(ROOT)}: {module}"
        for package in ("release", "run")
        for path in sorted((ROOT / package).glob("*.py"))
        for module in _imports(path)
        if module.startswith(("cloudorch.api", "cloudorch.cli"))
    }
    assert not wrong, sorted(wrong)
