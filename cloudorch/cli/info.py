"""What needs no state: `version`, `validate`, `graph`, `schema` and `providers`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from cloudorch import __version__
from cloudorch.cli.common import app
from cloudorch.cli.options import JsonOpt, plan_command, simple_command
from cloudorch.cli.output import Output
from cloudorch.errors import ConfigError

if TYPE_CHECKING:
    from cloudorch.api import RunOptions


@simple_command(
    app, "version", summary="Print cloudorch's version.", example="cloudorch version --json", exits="0 printed"
)
def version(json_: JsonOpt = False) -> int:
    """Print cloudorch's version."""
    out = Output.configure(json_mode=json_)
    if json_:
        out.document({"version": __version__, "python": sys.version.split()[0]})
    else:
        out.plain(f"cloudorch {__version__}")
    return 0


@plan_command(
    app,
    "validate",
    uses="vars stage notify json",
    summary="Check a plan file; reads no state or cloud.",
    example="cloudorch validate plans/quickstart.yaml\ncloudorch validate plans/release-demo.yaml --stage prod",
    exits="0 valid, 1 invalid (the error names file, line and field)",
)
def validate(opts: RunOptions, out: Output) -> int:
    """Check a plan file: syntax, types, properties, references and cycles. Reads no state or cloud.

    A plan with stages is checked for every stage at once, or for one with --stage.
    """
    from cloudorch import api

    loaded = api.validate(opts)
    n = len(loaded.instances)
    if out.json_mode:
        doc = {"valid": True, "plan": loaded.plan.name, "resources": n, "file": str(opts.plan_file)}
        out.document({**doc, "stage": opts.stage} if opts.stage else doc)
    else:
        where = f" (stage {opts.stage})" if opts.stage else ""
        out.print(f"[green]The plan file is valid:[/] {loaded.plan.name}{where}, {n} resource instance(s).")
    return 0


@plan_command(
    app,
    "graph",
    uses="vars stage json",
    summary="Print the dependency graph (dot, mermaid, json, graphml, gexf or node-link).",
    example="cloudorch graph plans/quickstart.yaml | dot -Tsvg > graph.svg\n"
    "cloudorch graph plans/quickstart.yaml --format graphml > graph.graphml\n"
    "cloudorch graph plans/release-demo.yaml --stage prod --format mermaid",
    exits="0 printed, 1 invalid plan file",
)
def graph(
    opts: RunOptions,
    out: Output,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="dot|mermaid|json|graphml|gexf|node-link",
            help="dot, mermaid, json (same as --json), or for graph tools (Gephi, yEd, networkx): "
            "graphml, gexf, node-link.",
        ),
    ] = "dot",
) -> int:
    """Print the dependency graph (pipe dot output to `dot -Tsvg`). Without --stage, a plan with stages
    shows every stage at once, with the stages and their `needs` as nodes and edges."""
    from cloudorch import api

    if format_ not in api.GRAPH_FORMATS:
        raise ConfigError(f"--format {format_}: unknown format", hint="use one of: " + ", ".join(api.GRAPH_FORMATS))
    if out.json_mode and format_ not in ("dot", "json"):
        raise ConfigError(f"--json and --format {format_} ask for two formats", hint="choose one")
    loaded = api.validate(opts)
    if out.json_mode:
        out.document(json.loads(api.render_graph(loaded.graph, "json")))
    else:
        sys.stdout.write(api.render_graph(loaded.graph, format_))
    return 0


@simple_command(
    app,
    "schema",
    summary="Print the JSON Schema of plan files.",
    example="cloudorch schema > cloudorch.schema.json\ncloudorch schema --module > cloudorch.module.schema.json",
    exits="0 printed",
)
def schema(
    json_: JsonOpt = False,
    module: Annotated[
        bool, typer.Option("--module", help="The schema of a module file (module.yaml) instead.")
    ] = False,
) -> int:
    """Print the JSON Schema of plan files, with every installed resource type's properties
    (with --module, of module files: `module.yaml`).

    The output is JSON either way; --json is accepted as on every command.
    """
    from cloudorch import api

    Output.configure(json_mode=json_)
    sys.stdout.write(json.dumps(api.schema(module=module), indent=2) + "\n")
    return 0


@simple_command(
    app,
    "providers",
    summary="List installed providers and their resource types.",
    example="cloudorch providers --json\ncloudorch providers --conformance",
    exits="0 listed (a provider that fails to load is listed with its error)",
)
def providers(
    json_: JsonOpt = False,
    conformance: Annotated[
        bool,
        typer.Option(
            "--conformance",
            help="Show instead which conformance checks each resource type passed in the kit's last run "
            "(read from .cloudorch/conformance.json, which the providers' conformance tests write).",
        ),
    ] = False,
    conformance_file: Annotated[
        Path | None,
        typer.Option("--conformance-file", metavar="FILE", help="Read the conformance table from FILE."),
    ] = None,
) -> int:
    """List installed providers and their resource types.

    With --conformance: the table of the conformance kit's last run, a row per resource type and a
    column per check (pass, fail, xfail for a known defect, n/a where a check does not apply).
    """
    from cloudorch import api

    out = Output.configure(json_mode=json_)
    if conformance or conformance_file is not None:
        return _conformance(out, conformance_file)
    info = api.providers_info()
    if json_:
        out.document({"providers": [p.to_json() for p in info]})
        return 0
    for p in info:
        if p.error:
            out.print(f"[red]{p.name}[/]: {p.error}")
            continue
        out.print(f"[bold]{p.name}[/] ({p.package})")
        for t in p.types:
            out.print(f"  {t.type:<28} {t.description}")
    return 0


_STYLE = {"pass": "green", "fail": "red", "xfail": "yellow", "n/a": "dim", "skip": "dim"}


def _conformance(out: Output, path: Path | None) -> int:
    from cloudorch import api

    table = api.conformance(path)
    where = path if path is not None else Path.cwd() / api.CONFORMANCE_FILE
    if table is None:
        if out.json_mode:
            out.document({"file": str(where), "conformance": None})
        else:
            out.print(
                f"No conformance run recorded: {escape(str(where))} does not exist. Run the conformance "
                "tests (pytest tests/provider/test_core_conformance.py providers/*/tests/test_conformance.py) "
                "from the checkout to write it."
            )
        return 0
    if out.json_mode:
        out.document(table.to_json())
        return 0
    out.print(f"Conformance of each resource type in the last run ({escape(str(table.path))}):")
    width = max([len(r.type) for r in table.rows] + [4])
    out.print("  " + "type".ljust(width) + "  " + "  ".join(api.CONFORMANCE_CHECKS))
    for row in table.rows:
        cells = []
        for check in api.CONFORMANCE_CHECKS:
            cell = row.cells.get(check, "")
            style = _STYLE.get(cell.split(" ", 1)[0])
            padded = escape(cell.ljust(len(check)))
            cells.append(f"[{style}]{padded}[/]" if style and cell else padded)
        out.print("  " + escape(row.type.ljust(width)) + "  " + "  ".join(cells))
    failed = [f"{r.type} {c}" for r in table.rows for c, s in r.checks.items() if s == "fail"]
    if failed:
        out.print(f"[red]{len(failed)} check(s) failed:[/] " + escape(", ".join(failed)))
    return 0
