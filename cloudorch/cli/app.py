"""The typer application: every command, each a plain function returning an exit code.

Commands parse flags into `api.RunOptions`, call one `cloudorch.api` function, and render the
result. They never compute anything themselves. Imports of the engine happen inside commands.
Shared options and the apply flow live in `common.py`; command groups of their own noun live in
their own modules, imported at the bottom so they register on the same app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudorch import __version__
from cloudorch.cli.common import (
    AutoApproveOpt,
    BackendOpt,
    ExcludeOpt,
    JsonOpt,
    LockTimeoutOpt,
    OnFailureOpt,
    OverrideOpt,
    ParallelismOpt,
    PlanArg,
    PolicyOpt,
    PolicyReportOpt,
    ReasonOpt,
    RefreshOpt,
    ReplaceOpt,
    SandboxOpt,
    StageOpt,
    StateDirOpt,
    TargetOpt,
    VarFileOpt,
    VarOpt,
    _options,
    _out,
    _plan_opts,
    _policy_kw,
    _render_policy,
    _run_apply,
    app,
    policy_app,
    state_app,
)
from cloudorch.errors import ConfigError, ExitCode

# --------------------------------------------------------------------------- commands


@app.command()
def version(json_: JsonOpt = False) -> int:
    """Print cloudorch's version."""
    out = _out(json_)
    if json_:
        out.document({"version": __version__, "python": sys.version.split()[0]})
    else:
        out.plain(f"cloudorch {__version__}")
    return 0


@app.command()
def validate(plan_file: PlanArg, var: VarOpt = None, var_file: VarFileOpt = None, json_: JsonOpt = False) -> int:
    """Check a plan file: syntax, types, properties, references and cycles. Reads no state or cloud."""
    from cloudorch import api

    out = _out(json_)
    loaded = api.validate(_options(plan_file, var=var, var_file=var_file, command="validate"))
    n = len(loaded.instances)
    if json_:
        out.document({"valid": True, "plan": loaded.plan.name, "resources": n, "file": str(plan_file)})
    else:
        out.print(f"[green]The plan file is valid:[/] {loaded.plan.name}, {n} resource instance(s).")
    return 0


@app.command()
def plan(
    plan_file: PlanArg,
    out_file: Annotated[Path | None, typer.Option("-o", "--out", help="Save the plan to apply it later.")] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes, 0 when none.")
    ] = False,
    destroy: Annotated[bool, typer.Option("--destroy", help="Plan to destroy everything in state.")] = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    replace: ReplaceOpt = None,
    refresh: RefreshOpt = "true",
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    policy: PolicyOpt = None,
    override: OverrideOpt = None,
    reason: ReasonOpt = None,
    policy_report: PolicyReportOpt = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            envvar="CLOUDORCH_PLAN_FORMAT",
            help="text, json (same as --json) or markdown (a pull-request comment, stable across runs).",
        ),
    ] = "text",
    json_: JsonOpt = False,
) -> int:
    """Refresh state, compare it with the plan file, check policies, and show what apply would do."""
    from cloudorch import api
    from cloudorch.cli.render import changeset_json, render_changeset

    if format_ not in ("text", "json", "markdown"):
        raise ConfigError(f"--format {format_}: unknown format", hint="use text, json or markdown")
    if json_ and format_ == "markdown":
        raise ConfigError("--json and --format markdown ask for two documents on stdout", hint="choose one")
    json_ = json_ or format_ == "json"
    out = _out(json_)
    opts = _plan_opts(
        plan_file,
        command="plan",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
        refresh=refresh,
        target=target,
        exclude=exclude,
        replace=replace,
        destroy=destroy,
        policy=_policy_kw(policy, override, reason, policy_report),
    )
    cs = api.plan(opts)
    if out_file is not None:
        cs.save(out_file)
    if json_:
        out.document(changeset_json(cs))
    elif format_ == "markdown":
        from cloudorch.cli.markdown import render

        sys.stdout.write(render(cs, stage=stage, sandbox=sandbox))
        sys.stdout.flush()
    else:
        render_changeset(out, cs)
        _render_policy(out, cs)
        if out_file is not None:
            out.print(f"\nSaved the plan to {out_file}. Apply exactly this with: cloudorch apply {out_file}")
    if cs.policy_results:
        from cloudorch.policy import PolicyReport

        PolicyReport.from_results(cs.policy_results).raise_if_blocked(opts.overrides)
    return int(ExitCode.CHANGES) if detailed_exitcode and cs.has_changes else 0


@app.command()
def apply(
    plan_file: Annotated[Path, typer.Argument(help="A plan file, or a plan saved with `plan -o`.", show_default=False)],
    auto_approve: AutoApproveOpt = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    replace: ReplaceOpt = None,
    refresh: RefreshOpt = "true",
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    policy: PolicyOpt = None,
    override: OverrideOpt = None,
    reason: ReasonOpt = None,
    policy_report: PolicyReportOpt = None,
    on_failure: OnFailureOpt = "stop",
    json_: JsonOpt = False,
) -> int:
    """Plan and apply (asks first), or apply a saved plan exactly as it was shown."""
    from cloudorch.changes import ChangeSet

    out = _out(json_)
    saved_path = plan_file if ChangeSet.looks_saved(plan_file) else None
    opts = _plan_opts(
        plan_file,
        command="apply",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
        refresh=refresh,
        target=target,
        exclude=exclude,
        replace=replace,
        destroy=False,
        on_failure=on_failure,
        policy=_policy_kw(policy, override, reason, policy_report),
    )
    return _run_apply(opts, out, json_, auto_approve, saved_path, "perform these actions")


@app.command()
def destroy(
    plan_file: PlanArg,
    auto_approve: AutoApproveOpt = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    parallelism: ParallelismOpt = 256,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Destroy everything the plan's state holds, in reverse dependency order."""
    out = _out(json_)
    opts = _plan_opts(
        plan_file,
        command="destroy",
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
        refresh="true",
        target=target,
        exclude=exclude,
        replace=None,
        destroy=True,
    )
    return _run_apply(opts, out, json_, auto_approve, None, "destroy these resources")


@app.command()
def output(
    plan_file: PlanArg,
    name: Annotated[str | None, typer.Argument(help="One output; all when omitted.")] = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Show the plan's outputs, as recorded in state by the last apply."""
    from cloudorch import api

    out = _out(json_)
    values = api.outputs(
        _options(
            plan_file,
            var=var,
            var_file=var_file,
            state_dir=state_dir,
            backend=backend,
            stage=stage,
            sandbox=sandbox,
            command="output",
        )
    )
    if name is not None:
        if name not in values:
            raise ConfigError(
                f"no output named {name!r} in state",
                hint="outputs: " + (", ".join(sorted(values)) or "none (apply the plan first)"),
            )
        item = values[name]
        if json_:
            out.document(item.get("value"))
        else:
            v = item.get("value")
            out.plain(v if isinstance(v, str) else __import__("json").dumps(v))
        return 0
    if json_:
        out.document({k: v.get("value") for k, v in values.items()})
    else:
        from cloudorch.cli.render import render_outputs

        if not values:
            out.print("No outputs in state (apply the plan first).")
        render_outputs(out, values)
    return 0


@app.command()
def graph(
    plan_file: PlanArg,
    format: Annotated[str, typer.Option("--format", help="dot, mermaid or json.")] = "dot",
    var: VarOpt = None,
    var_file: VarFileOpt = None,
) -> int:
    """Print the dependency graph (pipe dot output to `dot -Tsvg`)."""
    from cloudorch import api
    from cloudorch import graph as graphs

    renderers = {"dot": graphs.to_dot, "mermaid": graphs.to_mermaid, "json": graphs.to_json}
    if format not in renderers:
        raise ConfigError(f"--format {format}: unknown format", hint="use dot, mermaid or json")
    loaded = api.validate(_options(plan_file, var=var, var_file=var_file, command="graph"))
    sys.stdout.write(renderers[format](loaded.graph))
    return 0


@app.command()
def schema() -> int:
    """Print the JSON Schema of plan files, with every installed resource type's properties."""
    import json

    from cloudorch import api

    sys.stdout.write(json.dumps(api.schema(), indent=2) + "\n")
    return 0


@app.command()
def providers(json_: JsonOpt = False) -> int:
    """List installed providers and their resource types."""
    from cloudorch import api

    out = _out(json_)
    info = api.providers_info()
    if json_:
        out.document({"providers": info})
        return 0
    for p in info:
        if p.get("error"):
            out.print(f"[red]{p['name']}[/]: {p['error']}")
            continue
        out.print(f"[bold]{p['name']}[/] ({p['package']})")
        for t in p["types"]:
            out.print(f"  {t['type']:<28} {t['description']}")
    return 0


@app.command("force-unlock")
def force_unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock id printed by the command that was refused.")],
    plan_file: Annotated[Path | None, typer.Argument(help="The plan file whose state is locked.")] = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Remove a state lock left by a process that will not come back. Check it is really gone first."""
    from cloudorch import api

    out = _out(json_)
    if plan_file is None:
        api.force_unlock_any(Path(state_dir or ".cloudorch"), lock_id)
    else:
        api.force_unlock(
            _options(
                plan_file, state_dir=state_dir, backend=backend, stage=stage, sandbox=sandbox, command="force-unlock"
            ),
            lock_id,
        )
    if json_:
        out.document({"unlocked": lock_id})
    else:
        out.print(f"Lock {lock_id} removed.")
    return 0


# --------------------------------------------------------------------------- state


@state_app.command("list")
def state_list(
    plan_file: PlanArg,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """List the addresses in state."""
    from cloudorch import api

    out = _out(json_)
    opts = _options(
        plan_file,
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        command="state list",
    )
    records = api.state_list(opts)
    deposed = api.state_deposed(opts)
    if json_:
        doc: dict[str, Any] = {
            "resources": [
                {"address": r.address, "type": r.type, "id": r.id, "provider": r.provider}
                | ({"tainted": True} if r.tainted else {})
                for r in records
            ]
        }
        if deposed:
            doc["deposed"] = [
                {"address": d.address, "key": d.key, "type": d.type, "id": d.id, "provider": d.provider}
                for d in deposed
            ]
        out.document(doc)
    else:
        for r in records:
            out.plain(f"{r.address}\t{r.type}\t{r.id}" + ("\t(tainted)" if r.tainted else ""))
        for d in deposed:
            out.plain(f"{d.address}\t{d.type}\t{d.id}\t(deposed {d.key})")
    return 0


@state_app.command("show")
def state_show(
    plan_file: PlanArg,
    address: str,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Show one resource as state recorded it (sensitive values are stored as hashes only)."""
    import json

    from cloudorch import api

    out = _out(json_)
    rec = api.state_show(
        _options(
            plan_file,
            var=var,
            var_file=var_file,
            state_dir=state_dir,
            backend=backend,
            stage=stage,
            sandbox=sandbox,
            command="state show",
        ),
        address,
    )
    doc = rec.model_dump(mode="json")
    if json_:
        out.document(doc)
    else:
        out.plain(json.dumps(doc, indent=2))
    return 0


@state_app.command("rm")
def state_rm(
    plan_file: PlanArg,
    address: str,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Forget a resource without touching the cloud object."""
    from cloudorch import api

    out = _out(json_)
    what = api.state_rm(
        _options(
            plan_file,
            var=var,
            var_file=var_file,
            state_dir=state_dir,
            backend=backend,
            stage=stage,
            sandbox=sandbox,
            lock_timeout=lock_timeout,
            command="state rm",
        ),
        address,
    )
    out.document({"ok": True, "message": what}) if json_ else out.plain(what)
    return 0


@state_app.command("mv")
def state_mv(
    plan_file: PlanArg,
    old: str,
    new: str,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Rename an address in state (after renaming it in the plan file), so it is not replaced."""
    from cloudorch import api

    out = _out(json_)
    what = api.state_mv(
        _options(
            plan_file,
            var=var,
            var_file=var_file,
            state_dir=state_dir,
            backend=backend,
            stage=stage,
            sandbox=sandbox,
            lock_timeout=lock_timeout,
            command="state mv",
        ),
        old,
        new,
    )
    out.document({"ok": True, "message": what}) if json_ else out.plain(what)
    return 0


@state_app.command("import")
def state_import(
    plan_file: PlanArg,
    address: str,
    cloud_id: Annotated[str, typer.Argument(metavar="ID")],
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    json_: JsonOpt = False,
) -> int:
    """Adopt an existing cloud object into state under an address the plan declares."""
    from cloudorch import api

    out = _out(json_)
    rec = api.state_import(
        _options(
            plan_file,
            var=var,
            var_file=var_file,
            state_dir=state_dir,
            backend=backend,
            stage=stage,
            sandbox=sandbox,
            lock_timeout=lock_timeout,
            command="state import",
        ),
        address,
        cloud_id,
    )
    if json_:
        out.document(rec.model_dump(mode="json"))
    else:
        out.print(f"Imported {address} (id {rec.id}). Run `cloudorch plan` to see how it differs from the plan file.")
    return 0


@state_app.command("history")
def state_history(
    plan_file: PlanArg,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    json_: JsonOpt = False,
) -> int:
    """List the kept versions of state, newest first."""
    from dataclasses import asdict

    from cloudorch import api

    out = _out(json_)
    entries = api.state_history(
        _options(
            plan_file,
            var=var,
            var_file=var_file,
            state_dir=state_dir,
            backend=backend,
            stage=stage,
            sandbox=sandbox,
            command="state history",
        )
    )
    if json_:
        out.document({"history": [asdict(e) for e in entries]})
        return 0
    for e in entries:
        cur = " (current)" if getattr(e, "current", False) else ""
        out.plain(f"serial {e.serial}\t{e.written_at}\t{e.resource_count} resource(s){cur}")
    return 0


# --------------------------------------------------------------------------- policy


@policy_app.command("check")
def policy_check(
    plan_file: PlanArg,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    state_dir: StateDirOpt = None,
    backend: BackendOpt = None,
    stage: StageOpt = None,
    sandbox: SandboxOpt = False,
    lock_timeout: LockTimeoutOpt = 0.0,
    policy: PolicyOpt = None,
    override: OverrideOpt = None,
    reason: ReasonOpt = None,
    policy_report: PolicyReportOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Plan, then evaluate the policies on the changes without applying. Exit 3 when one blocks."""
    from cloudorch import api

    out = _out(json_)
    opts = _options(
        plan_file,
        var=var,
        var_file=var_file,
        state_dir=state_dir,
        backend=backend,
        stage=stage,
        sandbox=sandbox,
        command="policy check",
        lock_timeout=lock_timeout,
        **_policy_kw(policy, override, reason, policy_report),
    )
    report = api.policy_check(opts)
    if json_:
        out.document(report.to_json())
    else:
        out.plain(report.to_text())
    report.raise_if_blocked(opts.overrides)
    return 0


@policy_app.command("test")
def policy_test(
    path: Annotated[Path, typer.Argument(help="A .rego file or a folder of them.", show_default=False)],
    json_: JsonOpt = False,
) -> int:
    """Run Rego unit tests (`test_*` rules; `todo_test_*` are skipped). Exit 1 if any fails."""
    from dataclasses import asdict

    from cloudorch import api

    out = _out(json_)
    results = api.policy_test(path)
    failed = [r for r in results if not r.passed and not r.skipped]
    if json_:
        out.document({"passed": not failed, "tests": [asdict(r) for r in results]})
    else:
        for r in results:
            status = "SKIP" if r.skipped else ("PASS" if r.passed else "FAIL")
            where = f"{r.file}:{r.line}" if r.line else r.file
            out.plain(f"{status}  {r.name}  ({where})" + (f": {r.error}" if r.error else ""))
        passed = sum(1 for r in results if r.passed)
        skipped = sum(1 for r in results if r.skipped)
        out.plain(f"{passed} passed, {len(failed)} failed" + (f", {skipped} skipped" if skipped else ""))
    return int(ExitCode.ERROR) if failed else 0


# Command groups in their own modules register themselves on import.
from cloudorch.cli import backend_cmds, drift_cmds, recover_cmds, release_cmds, sandbox_cmds  # noqa: E402,F401
