"""Where the CLI writes: rich consoles for people, JSON documents for pipelines.

One `Output` per process, configured by the global flags (`--no-color`) and each command's
`--json`. With `--json`, stdout carries exactly one JSON document (errors included) and
everything meant for people goes to stderr. Owns the terminal decisions: colour (off with
`--no-color`, `NO_COLOR`, or `CI=true` unless `FORCE_COLOR` is set), live progress and prompts
(never under `CI=true`), and the sandbox banner / `"sandbox": true` marking.

No value can act on the reader: `escape` shows a value's control characters escaped (a newline
as `\n`, ESC as `\x1b`) for rich markup, and both consoles escape any control character that
reaches them otherwise and defuse a line that would start a CI workflow command (`::error::`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from rich.console import Console
from rich.markup import escape as _markup_escape
from rich.segment import Segment

from cloudorch import markdown
from cloudorch.cli.cihost import defuse_json
from cloudorch.errors import CloudorchError


def escape(value: object) -> str:
    """One value inside rich markup: shown as written, control characters escaped (`\\n`, `\\x1b`)."""
    return _markup_escape(markdown.safe(value))


class GuardedConsole(Console):
    """A rich console whose written text cannot drive a terminal or a CI runner.

    The last guard under every command's rendering, wherever a value was interpolated without
    `escape`: control characters in the text (not rich's own styling, which comes after) are
    escaped, and a line that would start with a workflow command gets a backslash in front.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._line_start = True  # nothing but blanks written since the last line break

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(self._guarded(buffer))

    def _guarded(self, buffer: Iterable[Segment]) -> Iterator[Segment]:
        for seg in buffer:
            if seg.control or not seg.text:
                yield seg
                continue
            yield Segment(self._defuse(markdown.safe_lines(seg.text)), seg.style, seg.control)

    def _defuse(self, text: str) -> str:
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                self._line_start = True
            if not self._line_start:
                continue
            stripped = part.lstrip(" \t")
            if stripped.startswith(markdown.COMMAND_PREFIXES):
                parts[i] = part[: len(part) - len(stripped)] + "\\" + stripped
            if stripped:
                self._line_start = False
        return "\n".join(parts)


def _secrets_chosen() -> bool:
    """Whether this run chose a sensitive variable value `redact` would mask."""
    if "cloudorch.planfile.variables" not in sys.modules:
        return False
    from cloudorch import api

    return bool(api.known_secrets())


def redact(text: str) -> str:
    """`text` with the value of every sensitive variable of this run replaced by `(sensitive)`.

    Changesets, outputs and messages mask sensitive values where they are built; this is the
    last line of defence for text built elsewhere (a provider's error quoting a value)."""
    if "cloudorch.planfile.variables" not in sys.modules:
        return text  # no plan was loaded: no variable was chosen
    from cloudorch import api

    secrets = api.known_secrets()
    return api.redact_text(text, secrets) if secrets else text


def in_ci() -> bool:
    """`CI=true` (set by GitHub Actions, GitLab CI and most others): no prompts, no live panels."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _forced_color() -> bool:
    return bool(os.environ.get("FORCE_COLOR") or os.environ.get("CLOUDORCH_FORCE_COLOR"))


def dumps_document(doc: Any) -> bytes:
    """`doc` as `json.dumps(doc, indent=1, default=str)` writes it; models inside are serialised as
    their JSON form.

    pydantic-core's serialiser writes the same layout (one-space indent, ASCII only) in a fraction
    of the time, straight from models, with no intermediate dicts: a 20,000-resource changeset is
    written in ~0.1 s instead of ~1 s. What it cannot write (a lone surrogate) goes the slow way.
    """
    import pydantic_core

    try:
        data = pydantic_core.to_json(doc, indent=1, fallback=str)
        if not data.isascii():
            # escaping costs ~10% of the whole write: only a document holding non-ASCII text pays it
            data = pydantic_core.to_json(doc, indent=1, ensure_ascii=True, fallback=str)
        return data
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError):
        return json.dumps(_plain(doc), indent=1, default=str, sort_keys=False).encode("ascii")


def _plain(value: Any) -> Any:
    """`value` with every model replaced by its JSON-shaped dump (for the json.dumps fallback)."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


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
        self.out = GuardedConsole(no_color=no_color, highlight=False, soft_wrap=True, force_terminal=term)
        self.err = GuardedConsole(
            stderr=True, no_color=no_color, highlight=False, soft_wrap=True, force_terminal=term
        )

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
            self.err.print(f"[bold black on yellow] {_markup_escape(SANDBOX_BANNER)} [/]")

    # -- writing ------------------------------------------------------------------------

    def print(self, text: Any = "", **kwargs: Any) -> None:
        """Human text: stdout normally, stderr in --json mode (stdout is for the document)."""
        (self.err if self.json_mode else self.out).print(redact(text) if isinstance(text, str) else text, **kwargs)

    def plain(self, text: str, *, err: bool = False, reveal: bool = False) -> None:
        """Text composed elsewhere (a report, a message): its line breaks are its layout.

        `reveal`: the user asked for this sensitive value (`output NAME --raw`): do not mask it."""
        text = text if reveal else redact(text)
        (self.err if err or self.json_mode else self.out).print(_markup_escape(markdown.safe_lines(text)))

    def document(self, doc: Any, *, reveal: bool = False) -> None:
        """The command's one JSON document on stdout; `reveal` as in `plain`."""
        self.documented = True
        if self.sandbox and isinstance(doc, dict):
            doc = {"sandbox": True, **doc}
        data = dumps_document(doc)
        stdout = sys.stdout
        buffer = getattr(stdout, "buffer", None)
        fast = (reveal or not _secrets_chosen()) and os.name != "nt" and b"##vso[" not in data
        if fast and buffer is not None:
            # nothing to redact or defuse: the ASCII bytes as they are, not three more copies of a large text
            stdout.flush()
            buffer.write(data)
            buffer.write(b"\n")
            buffer.flush()
            return
        text = data.decode("ascii")
        stdout.write(defuse_json(text if reveal else redact(text)))
        stdout.write("\n")
        stdout.flush()

    def error(self, exc: CloudorchError) -> None:
        if self.json_mode:
            if self.documented:
                # the result (e.g. a plan with its policy violations) is already on stdout:
                # keep stdout one document and put the error beside it
                sys.stderr.write(defuse_json(redact(json.dumps(exc.to_json()))) + "\n")
            else:
                self.document(exc.to_json())
            return
        con = self.err
        where = f"{exc.location}: " if exc.location is not None else ""
        # a location names a file a user chose: one value; a message may have lines of its own
        where = escape(where)
        message = _markup_escape(markdown.safe_lines(redact(exc.message)))
        con.print(f"[bold red]Error:[/] {where}{message}")
        if exc.hint:
            con.print(f"  [yellow]hint:[/] {_markup_escape(markdown.safe_lines(redact(exc.hint)))}")
