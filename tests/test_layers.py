"""The layers of cloudorch, checked: no package imports one above it, and no cycle appears.

Every `import` in `cloudorch/` counts, including the lazy ones inside functions: a lazy import
still ties the two packages together. `docs/architecture.md` explains the layers in words.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import cloudorch

PACKAGE = Path(cloudorch.__file__).parent

# Lowest first: a unit may import only units of a lower layer. `cloudorch` itself (its
# `__version__`) is the floor of everything.
LAYERS: list[set[str]] = [
    {"cloudorch"},
    {"errors"},
    {"clock", "actor", "markdown"},
    {"graph", "provider", "state"},
    {"runs"},
    {"notify"},
    {"changes", "planfile", "graph_export", "sandbox"},
    {"policy"},
    {"engine"},
    {"run"},
    {"release", "testing"},
    {"fleet"},
    {"ui"},
    {"api"},
    {"cli"},
    {"__main__"},
]

# What the command line may import: the facade, the errors, and the Markdown escaper it renders with.
CLI_MAY_IMPORT = {"cloudorch", "api", "errors", "markdown"}


def _unit(module: str) -> str:
    """The package or top-level module of `cloudorch` that `module` belongs to.

    `from cloudorch import __version__` names an attribute of the root, not a unit of its own.
    """
    parts = module.split(".")
    if len(parts) < 2:
        return "cloudorch"
    head = parts[1]
    if (PACKAGE / head).is_dir() or (PACKAGE / f"{head}.py").is_file():
        return head
    return "cloudorch"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target == "cloudorch":
                found.update(f"cloudorch.{alias.name}" for alias in node.names)
            else:
                found.add(target)
    return {name for name in found if name == "cloudorch" or name.startswith("cloudorch.")}


def package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        src = _unit(_module_name(path))
        for target in _imports(path):
            dst = _unit(target)
            if dst != src:
                edges[src].add(dst)
    return edges


def _layer_of(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"cloudorch.{unit} is in no layer: add it to LAYERS and to docs/architecture.md")


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    for unit in units:
        _layer_of(unit)


def test_no_package_imports_one_above_it() -> None:
    wrong = []
    for src, dsts in package_edges().items():
        for dst in dsts:
            if _layer_of(dst) >= _layer_of(src):
                wrong.append(f"cloudorch.{src} imports cloudorch.{dst}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_cycle_between_packages() -> None:
    edges = package_edges()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("package cycle: " + " -> ".join(cycle))


def test_release_does_not_import_the_facade() -> None:
    assert "api" not in package_edges().get("release", set())


def test_cli_imports_only_the_facade_and_rendering_helpers() -> None:
    extra = package_edges().get("cli", set()) - CLI_MAY_IMPORT
    assert not extra, f"cloudorch.cli imports {sorted(extra)}: go through cloudorch.api"
