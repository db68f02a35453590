"""Where the CLI writes: rich consoles for people, JSON documents for pipelines.

One `Output` per process, configured by the global flags (`--no-color`) and each command's
`--json`. With `--json`, stdout carries exactly one JSON document (errors included) and
everything meant for people goes to stderr. Owns the terminal decisions: colour (off with
`--no-color`, `NO_COLOR`, or `CI=true` unless `FORCE_COLOR` is set), live progress and prompts
(never under `CI=true`), and the sandbox banner / `"sandbox": true` marking.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, ClassVar

from rich.console import Console
from rich.markup import escape

from cloudorch.errors import CloudorchError


def in_ci() -> bool:
    """`CI=true` (set by GitHub Actions, GitLab CI and most others): no prompts, no live panels."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _forced_color() -> bool:
    return bool(os.environ.get("FORCE_COLOR") or os.environ.get("CLOUDORCH_FORCE_COLOR"))


SANDBOX_BANNER = "SANDBOX: local emulators, sandbox state; no real cloud is touched (`cloudorch sandbox status`)"


class Output:
    _current: ClassVar[Output | None] = None

    def __init__(self, *, color: bool = True, json_mode: bool = False, sandbox: bool = False) -> None:
        ci_plain = in_ci() and not _forced_color()
        no_color = not color or bool(os.environ.get("NO_COLOR")) or ci_plain
        self.json_mode = json_mode
        self.documented = False  # stdout already holds this command's one JSON document
        self.sandbox = sandbox  # this run works on the sandbox: say so on every screen
        # under CI a pseudo-terminal is still a log file: no escape codes at all, not even bold
        term = False if ci_plain else None
        self.out = Console(no_color=no_color, highlight=False, soft_wrap=True, force_terminal=term)
        self.err = Console(stderr=True, no_color=no_color, highlight=False, soft_wrap=True, force_terminal=term)

    @classmethod
    def current(cls) -> Output:
        if cls._current is None:
            cls._current = Output()
        return cls._current

    @classmethod
    def configure(
        cls, *, color: bool | None = None, json_mode: bool | None = None, sandbox: bool | None = None
    ) -> Output:
        cur = cls.current()
        new = Output(
            color=(not cur.out.no_color) if color is None else color,
            json_mode=cur.json_mode if json_mode is None else json_mode,
            sandbox=cur.sandbox if sandbox is None else sandbox,
        )
        cls._current = new
        return new

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal and not self.json_mode and not in_ci()

    def mark_sandbox(self) -> None:
        """From here on this run is the sandbox's: a banner for people, a field in JSON documents."""
        if self.sandbox:
            return
        self.sandbox = True
        if not self.json_mode:
            self.err.print(f"[bold black on yellow] {escape(SANDBOX_BANNER)} [/]")

    # -- writing ------------------------------------------------------------------------

    def print(self, text: Any = "", **kwargs: Any) -> None:
        """Human text: stdout normally, stderr in --json mode (stdout is for the document)."""
        (self.err if self.json_mode else self.out).print(text, **kwargs)

    def plain(self, text: str, *, err: bool = False) -> None:
        (self.err if err or self.json_mode else self.out).print(escape(text))

    def document(self, doc: Any) -> None:
        self.documented = True
        if self.sandbox and isinstance(doc, dict):
            doc = {"sandbox": True, **doc}
        sys.stdout.write(json.dumps(doc, indent=1, default=str, sort_keys=False) + "\n")
        sys.stdout.flush()

    def error(self, exc: CloudorchError) -> None:
        if self.json_mode:
            if self.documented:
                # the result (e.g. a plan with its policy violations) is already on stdout:
                # keep stdout one document and put the error beside it
                sys.stderr.write(json.dumps(exc.to_json()) + "\n")
            else:
                self.document(exc.to_json())
            return
        con = self.err
        where = f"{exc.location}: " if exc.location is not None else ""
        con.print(f"[bold red]Error:[/] {escape(where + exc.message)}")
        if exc.hint:
            con.print(f"  [yellow]hint:[/] {escape(exc.hint)}")
