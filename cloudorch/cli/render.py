"""Rendering changesets, apply results and progress for people (Terraform's + ~ -/+ - style).

Sensitive values arrive masked from the planner; values known only after apply are shown as
`(known after apply)`. Every value goes through `escape` (control characters shown escaped), so
no address, key or property can start a line of its own. Nothing here decides anything.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from rich.live import Live
from rich.text import Text

from cloudorch import markdown
from cloudorch.api import KNOWN_AFTER_APPLY, Action, ApplyObserver, Change, ChangeSet
from cloudorch.cli.output import Output, escape, redact

if TYPE_CHECKING:
    from cloudorch.api import ApplyResult
    from cloudorch.errors import ProviderError

_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "magenta",
    Action.DELETE: "red",
    Action.NOOP: "dim",
}
_VERB = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.REPLACE: "will be replaced",
    Action.DELETE: "will be destroyed",
    Action.NOOP: "is unchanged",
}


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, default=str, sort_keys=True)


def _after_value(c: Change, key: str, value: Any) -> str:
    if key in c.after_unknown:
        return KNOWN_AFTER_APPLY
    if key in c.sensitive and value is not None:
        return "(sensitive)"
    return _fmt(value)


def render_change(out: Output, c: Change) -> None:
    style = _STYLE[c.action]
    sym = c.action.symbol
    why = f"  [dim]# {escape('; '.join(c.reasons))}[/]" if c.reasons else ""
    verb = _VERB[c.action]
    if c.deposed is not None:
        verb = f"{verb}: delete (deposed {c.deposed})"
    elif c.tainted:
        verb = f"{verb}: replace (tainted)"
    if c.moved_from is not None:
        verb = f"move from {escape(c.moved_from)}" + ("" if c.action is Action.NOOP else f", then {verb}")
    if c.importing is not None:
        verb = f"import {escape(_fmt(c.importing))}" + ("" if c.action is Action.NOOP else f", then {verb}")
    out.print(f"  [{style}]{sym}[/] [bold]{escape(c.address)}[/] [dim]({escape(c.type)})[/] {verb}{why}")
    if c.action is Action.CREATE:
        for key, value in sorted((c.after or {}).items()):
            if value in (None, {}, [], False) and key not in c.after_unknown:
                continue
            out.print(f"      [green]+[/] {escape(key)} = {escape(_after_value(c, key, value))}")
    elif c.action in (Action.UPDATE, Action.REPLACE):
        for d in c.diff:
            after = KNOWN_AFTER_APPLY if d.unknown else ("(sensitive)" if d.sensitive else _fmt(d.after))
            before = "(sensitive)" if d.sensitive else _fmt(d.before)
            mark = " [magenta]# forces replacement[/]" if d.force_new else ""
            out.print(f"      [yellow]~[/] {escape(d.path)} = {escape(before)} -> {escape(after)}{mark}")
    elif c.action is Action.DELETE and c.id:
        out.print(f"      [red]-[/] id = {escape(_fmt(c.id))}")


def summary_line(cs: ChangeSet) -> str:
    n = cs.counts()
    adopted = "".join(f", {len(x)} to {verb}" for x, verb in ((cs.imports, "import"), (cs.moves, "move")) if x)
    return (
        f"Plan: {n['create']} to create, {n['update']} to update, "
        f"{n['replace']} to replace, {n['delete']} to destroy{adopted}."
    )


def render_changeset(out: Output, cs: ChangeSet) -> None:
    cs = cs.masked()
    drift = [c for c in cs.changes if c.drift]
    if drift:
        out.print("[bold]Changed outside cloudorch[/] (drift found by refresh):")
        for c in drift:
            out.print(f"  [yellow]![/] {escape(c.address)}: {escape('; '.join(c.reasons) or 'differs')}")
        out.print()
    for note in cs.notes:
        out.print(f"[dim]Note: {escape(note)}[/]")
    changes = [c for c in cs.changes if c.is_change or c.moved_from is not None or c.importing is not None]
    if not changes:
        out.print("[green]No changes.[/] The cloud matches the plan file.")
        return
    out.print("cloudorch will perform the following actions:\n")
    order = {Action.DELETE: 0, Action.REPLACE: 1, Action.UPDATE: 2, Action.CREATE: 3, Action.NOOP: 4}
    for c in sorted(changes, key=lambda c: (order.get(c.action, 9), c.address)):
        render_change(out, c)
        out.print()
    out.print(f"[bold]{summary_line(cs)}[/]")


def changeset_json(cs: ChangeSet) -> dict[str, Any]:
    """The changeset's `--json` document: its fields but `inputs`, then a summary.

    The values stay models (`Change`, `PropertyDiff`): `Output.document` serialises them without
    first copying 20,000 changes into dicts."""
    masked = cs.masked()
    doc: dict[str, Any] = {name: getattr(masked, name) for name in type(masked).model_fields if name != "inputs"}
    doc["summary"] = {**cs.counts(), "has_changes": cs.has_changes}
    return doc


def result_json(result: ApplyResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "succeeded": sorted(result.succeeded),
        "unchanged_after_resolve": result.unchanged,
        "failed": result.failed,
        "skipped": result.skipped,
        "not_started": result.not_started,
        "stopped_by": result.stopped_by,
        "rolled_back": result.undo.to_json() if result.undo is not None else None,
        "repair": {k: v for k, v in result.repair.items() if k != "message"} if result.repair else None,
        "retries": result.retries,
        "seconds": round(result.seconds, 3),
        "state_serial": result.state.serial,
    }


def render_result(out: Output, result: ApplyResult) -> None:
    n = result.changeset.counts()
    done = len(result.succeeded)
    if result.ok:
        verb = "Destroy" if result.changeset.destroy else "Apply"
        out.print(
            f"[bold green]{verb} complete![/] {n['create']} created, {n['update'] - len(result.unchanged)} updated, "
            f"{n['replace']} replaced, {n['delete']} destroyed"
            + (f", {len(result.unchanged)} unchanged after resolve" if result.unchanged else "")
            + (f", {len(result.changeset.imports)} imported" if result.changeset.imports else "")
            + (f", {len(result.changeset.moves)} moved" if result.changeset.moves else "")
            + f" in {result.seconds:.1f}s"
            + (f" ({result.retries} retried call(s))" if result.retries else "")
            + "."
        )
        return
    if result.undo is not None:
        render_undo(out, result)
        return
    out.print(f"[bold red]Apply failed.[/] {done} operation(s) succeeded and are saved in state.")
    for address, why in sorted(result.failed.items()):
        out.print(f"  [red]x[/] {escape(address)}: {escape(why)}")
    for address, why in sorted(result.skipped.items()):
        out.print(f"  [dim]-[/] {escape(address)}: skipped ({escape(why)})")
    if result.not_started and result.stopped_by:
        out.print(
            f"  [dim]-[/] {len(result.not_started)} operation(s) not started: --on-failure=stop starts nothing new "
            f"after {escape(result.stopped_by)} failed (--on-failure=continue would have)"
        )
    if result.retries:
        out.print(f"  {result.retries} call(s) were retried.")
    out.print(
        "Fix the cause and run `cloudorch apply` again: it plans from the saved state and only does what is left."
    )


def render_outputs(out: Output, outputs: dict[str, Any]) -> None:
    if not outputs:
        return
    out.print("\n[bold]Outputs:[/]")
    for name, item in sorted(outputs.items()):
        value = "(sensitive)" if item.get("sensitive") else _fmt(item.get("value"))
        out.print(f"  {escape(name)} = {escape(value)}")


# --------------------------------------------------------------------------- progress


_FINISHED_VERB = {"create": "created", "update": "updated", "replace": "replaced", "delete": "destroyed"}


class ProgressObserver(ApplyObserver):
    """Apply progress: a live panel on a terminal, one plain line per event elsewhere."""

    #: plain lines off a terminal are written at most this often (seconds), many at once: one
    #: write per operation, under the lock every worker thread takes, made a large apply queue
    FLUSH_EVERY = 0.1

    def __init__(self, out: Output, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self.failed = 0
        self.running: dict[str, tuple[Change, float]] = {}  # for the live panel only
        self._lock = threading.Lock()
        self._lines: list[str] = []  # plain lines not written yet
        self._written_at = time.monotonic()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.live: Live | None = None
        if out.interactive:
            self.live = Live(self._panel(), console=out.err, refresh_per_second=8, transient=True)

    def __enter__(self) -> ProgressObserver:
        # the live panel starts with the first operation, not before the plan and the prompt
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._lock:
            self._write_lines()
            self._ticker, self._stop = None, threading.Event()  # a later `with` starts its own
        if self.live is not None:
            self.live.stop()

    def _write_lines(self) -> None:
        """Write the buffered plain lines; called with the lock held."""
        if self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            sys.stderr.write(text)
        self._written_at = time.monotonic()

    def _tick(self, stop: threading.Event) -> None:
        # the last lines before a long wait (every running operation a slow cloud call) are
        # written within FLUSH_EVERY too, not only when the next operation finishes
        while not stop.wait(self.FLUSH_EVERY):
            with self._lock:
                if self._lines:
                    self._write_lines()

    def _panel(self) -> Text:
        now = time.monotonic()
        lines = [
            f"Applying: {self.done}/{self.total} done, {len(self.running)} running, {self.failed} failed"
        ]
        for address, (c, t0) in sorted(self.running.items(), key=lambda kv: kv[1][1])[:12]:
            lines.append(f"  {c.action.symbol} {markdown.safe(address)} ({markdown.safe(c.type)}) {now - t0:.1f}s")
        if len(self.running) > 12:
            lines.append(f"  ... and {len(self.running) - 12} more")
        return Text("\n".join(lines))

    def _say(self, text: str) -> None:
        text = redact(text)  # a provider's error may quote a value
        if self.live is not None:
            self.live.console.print(text, highlight=False)
            self.live.update(self._panel())
        else:
            # plain lines off a terminal: rich's markup rendering costs too much per operation
            self._lines.append(markdown.safe_line(Text.from_markup(text).plain) + "\n")
            self._write_lines()  # a message or a failure is shown at once, after the lines before it

    def op_started(self, change: Change) -> None:
        if self.live is None:
            return  # only the live panel shows what is running
        with self._lock:
            self.running[change.address] = (change, time.monotonic())
            if self.live is not None:
                if not self.live.is_started:
                    self.live.start()
                self.live.update(self._panel())

    def op_finished(self, change: Change, seconds: float) -> None:
        verb = _FINISHED_VERB.get(change.action.value, "done")
        with self._lock:
            self.running.pop(change.address, None)
            self.done += 1
            if self.live is None:
                # the line `_say` would write, without parsing markup: one per operation
                line = f"{change.address}: {verb} ({seconds:.1f}s) [{self.done}/{self.total}]"
                self._lines.append(markdown.safe_line(redact(line)) + "\n")
                if time.monotonic() - self._written_at >= self.FLUSH_EVERY:
                    self._write_lines()
                elif self._ticker is None:
                    self._ticker = threading.Thread(
                        target=self._tick, args=(self._stop,), name="cloudorch-progress", daemon=True
                    )
                    self._ticker.start()
                return
            self._say(f"{escape(change.address)}: {verb} ({seconds:.1f}s) [{self.done}/{self.total}]")

    def op_unchanged(self, change: Change, seconds: float) -> None:
        with self._lock:
            self.running.pop(change.address, None)
            self.done += 1
            self._say(f"{escape(change.address)}: unchanged after resolve, no-op [{self.done}/{self.total}]")

    def op_failed(self, change: Change, error: BaseException) -> None:
        with self._lock:
            self.running.pop(change.address, None)
            self.failed += 1
            self._say(f"[red]{escape(change.address)}: {change.action.value} failed: {escape(str(error))}[/]")

    def op_retry(self, change: Change, error: ProviderError, attempt: int, delay: float) -> None:
        with self._lock:
            self._say(
                f"[yellow]{escape(change.address)}: {error.kind.value} error, retry {attempt} in {delay:.1f}s: "
                f"{escape(error.message)}[/]"
            )

    def message(self, text: str) -> None:
        with self._lock:
            self._say(f"[yellow]{escape(text)}[/]")

    def undo_started(self, total: int) -> None:
        with self._lock:
            self.done, self.failed, self.total = 0, 0, total
            self._say(f"[yellow]Rolling back: {total} operation(s) to undo[/]")


# --------------------------------------------------------------------------- drift (issue #6)

_DRIFT_VERB = {
    "deleted": ("[red]-[/]", "deleted outside cloudorch"),
    "changed": ("[yellow]~[/]", "changed outside cloudorch"),
    "created_outside": ("[cyan]+[/]", "created outside cloudorch (not in state)"),
}


def _drift_value(value: Any, *, absent: str) -> str:
    return absent if value is None else _fmt(value)


def render_drift(out: Output, report: Any) -> None:
    """A drift report for people: per address, per property, plan | state | cloud."""
    n = report.counts()
    if not report.has_drift:
        out.print(f"[green]No drift.[/] {len(report.checked)} resource(s) match what state recorded.")
    else:
        out.print(
            f"[bold]Drift found[/] in {len(report.resources)} resource(s) "
            f"({n['changed']} changed, {n['deleted']} deleted, {n['created_outside']} created outside):\n"
        )
    for r in report.resources:
        sym, verb = _DRIFT_VERB[r.status]
        extra = "" if r.in_plan else " [dim](no longer in the plan file)[/]"
        cloud_id = f" [dim]id {escape(str(r.cloud_id))}[/]" if r.status == "created_outside" else ""
        out.print(f"  {sym} [bold]{escape(r.address)}[/] [dim]({escape(r.type)})[/] {verb}{cloud_id}{extra}")
        for p in r.properties:
            cloud = "(gone)" if r.status == "deleted" else _drift_value(p.cloud, absent="(unset)")
            state = "(not in state)" if r.status == "created_outside" else _drift_value(p.state, absent="(unset)")
            plan = _drift_value(p.plan, absent="(unset)") if r.in_plan else "(not in plan)"
            out.print(
                f"      {escape(p.path)}: plan {escape(plan)} | state {escape(state)} | cloud {escape(cloud)}"
            )
    for address, paths in sorted(report.ignored.items()):
        ignored = escape(", ".join(paths))
        out.print(f"  [dim]{escape(address)}: drift of {ignored} ignored (lifecycle.ignore_changes)[/]")
    if report.policy_results:
        from cloudorch.api import PolicyReport

        out.print("\n[bold]Policies on the live state:[/]")
        out.plain(PolicyReport.from_results(report.policy_results).to_text())


def _md_code(value: str) -> str:
    from cloudorch import markdown as md

    return md.code(value)


def _md(value: Any) -> str:
    from cloudorch import markdown as md

    # what a file or the cloud holds: no character of it may act as Markdown or HTML
    return "—" if value is None else md.literal(_fmt(value), limit=80)


def drift_markdown(report: Any) -> str:
    """A compact CI summary: stable across runs (sorted, no times, no call counts) so a bot can edit one comment."""
    from cloudorch import markdown as md

    lines = [f"### cloudorch drift: {md.code(report.plan_name)}", ""]
    n = report.counts()
    if not report.has_drift:
        lines.append(f"No drift: {len(report.checked)} resource(s) match state.")
    else:
        lines.append(
            f"**{len(report.resources)} resource(s) drifted** of {len(report.checked)} checked: "
            f"{n['changed']} changed, {n['deleted']} deleted, {n['created_outside']} created outside."
        )
    for r in report.resources:
        verb = _DRIFT_VERB[r.status][1]
        # inside HTML, where a code span is not rendered: <code> around the HTML-safe text form
        lines += ["", f"<details><summary><code>{md.text(r.address)}</code> ({md.text(r.type)}): {verb}</summary>", ""]
        lines += ["| property | plan | state | cloud |", "|---|---|---|---|"]
        for p in r.properties:
            lines.append(f"| {_md_code(p.path)} | {_md(p.plan)} | {_md(p.state)} | {_md(p.cloud)} |")
        lines += ["", "</details>"]
    if report.ignored:
        lines += ["", "Ignored by `lifecycle.ignore_changes`: " + "; ".join(
            f"{md.code(a)}: {', '.join(md.text(p) for p in paths)}" for a, paths in sorted(report.ignored.items())
        )]
    if report.policy_results:
        rows = sorted(report.policy_results, key=lambda v: (str(v.get("address")), str(v.get("policy_id"))))
        blocking = sum(1 for v in rows if v.get("blocking"))
        lines += ["", f"<details><summary>Policies on live state: {len(rows)} violation(s), {blocking} blocking"
                  "</summary>", "", "| policy | level | address | message |", "|---|---|---|---|"]
        for v in rows:
            lines.append(
                f"| {md.code(v.get('policy_id'))} | {md.text(v.get('level'))} | {md.code(v.get('address'))} "
                f"| {md.text(v.get('message', ''))} |"
            )
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def render_undo(out: Output, result: ApplyResult) -> None:
    """The end of `apply --on-failure=rollback`: what failed, what was undone, what could not be."""
    undo = result.undo
    for address, why in sorted(result.failed.items()):
        out.print(f"  [red]x[/] {escape(address)}: {escape(why)}")
    verdict = "[bold yellow]Apply failed and was rolled back.[/]" if undo.complete else (
        "[bold red]Apply failed; the rollback is incomplete.[/]"
    )
    out.print(
        f"{verdict} {len(undo.undone)} operation(s) undone in {undo.seconds:.1f}s"
        f" (the apply had run {result.seconds:.1f}s)."
    )
    for address, what in sorted(undo.undone.items()):
        out.print(f"  [green]<[/] {escape(address)}: {escape(what)}")
    for address, why in sorted(undo.not_undone.items()):
        out.print(f"  [red]![/] {escape(address)}: not undone: {escape(why)}")
    for text in undo.warnings:
        out.print(f"  [yellow]warning:[/] {escape(text)}")
    for address, what in sorted(undo.differences.items()):
        out.print(f"  [yellow]~[/] {escape(address)}: not as before: {escape(what)}")
    if undo.as_before:
        out.print("State and the cloud are as they were before this apply. Fix the cause and apply again.")
    elif undo.complete:
        out.print("Every undo ran, but the resources listed above are not as they were before this apply.")
    else:
        out.print("Check what was not undone; `cloudorch plan` shows how the cloud now differs from the plan.")


def render_recovery(out: Output, outcome: Any) -> None:
    """What `cloudorch recover` did."""
    if outcome.took_over is not None:
        out.print(f"Took over a stale state lock held by {escape(outcome.took_over.describe())}.")
    report = outcome.report
    if report is None:
        out.print("[green]Nothing to recover:[/] no unfinished apply left a journal behind.")
        return
    out.print(f"[bold]Recovered an unfinished apply[/] from {escape(report.journal)}:")
    out.print(f"  {len(report.recovered)} finished operation(s) replayed into state")
    for address in report.adopted:
        out.print(f"  [green]adopted[/] {escape(address)}: an in-flight create had made it")
    for address in report.absent:
        out.print(f"  [dim]absent[/] {escape(address)}: an in-flight create made nothing")
    for address in report.deleted:
        out.print(f"  [dim]deleted[/] {escape(address)}: an in-flight delete had finished")
    for address in report.lost:
        out.print(f"  [yellow]unknown[/] {escape(address)}: in flight and not confirmable; the next plan shows it")
    if outcome.undo is not None:
        undo = outcome.undo
        out.print(f"Finished the rollback the crash interrupted: {len(undo.undone)} operation(s) undone.")
        for address, what in sorted(undo.undone.items()):
            out.print(f"  [green]<[/] {escape(address)}: {escape(what)}")
        for address, why in sorted(undo.not_undone.items()):
            out.print(f"  [red]![/] {escape(address)}: not undone: {escape(why)}")
    out.print(f"State saved at serial {outcome.state_serial}. Run `cloudorch apply` to finish the plan.")
