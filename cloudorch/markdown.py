"""How a value is shown as text: `safe` for terminal and log lines, and the one Markdown escaper
for every Markdown cloudorch writes (plan and drift comments, policy reports).

One rule under all three: no character of a value may act on the reader. A control character
(C0, DEL, C1, the Unicode line and paragraph separators) could end a line and start another that
CI reads as a workflow command (`::error ...::`), or drive a terminal (ESC sequences). `safe`
shows each one escaped (`\\n`, `\\x1b`); `safe_lines` does the same for a text whose own layout
has line breaks; Markdown's `text` (prose: pipes, backticks, `<`, `>`, `&` and backslashes escaped),
`literal` (a value from outside, as `text` in `<code>`) and `code` (an inline code span: pipes
escaped, backticks replaced; `<` and `>` stay, since a code span never renders HTML) turn
control characters into spaces, which cannot end a table row.
All of them also break Azure Pipelines' `##vso[` wherever it is in a line (its agent acts on a
logging command that starts mid-line, not only at a line's start): it is written `#\\#vso[`.
Imports nothing of cloudorch.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: what GitHub Actions (and Azure Pipelines) read as a command at the start of a line, after blanks
COMMAND_PREFIXES = ("::", "##[", "##vso[")
#: what Azure Pipelines reads as a command anywhere in a line, and how a value shows it instead
AZURE_COMMAND, AZURE_DEFUSED = "##vso[", "#\\#vso["
_COMMAND_LINE = re.compile(r"\n(?=[ \t]*(?:" + "|".join(re.escape(p) for p in COMMAND_PREFIXES) + "))")


def _escaped(match: re.Match[str]) -> str:
    ch = match.group(0)
    named = _NAMED.get(ch)
    if named is not None:
        return named
    n = ord(ch)
    return f"\\x{n:02x}" if n <= 0xFF else f"\\u{n:04x}"


def defuse(text: str) -> str:
    """`text` with no `##vso[` left in it, wherever it was."""
    return text.replace(AZURE_COMMAND, AZURE_DEFUSED)


def safe(value: object, *, mid_line: bool = True) -> str:
    """One value on a line of its own making: every control character shown escaped, newlines included.

    `mid_line=False` leaves `##vso[` as written: only for a value inside a logging command the
    writer starts its line with, where Azure's agent has found its command already."""
    s = _CONTROL.sub(_escaped, str(value))
    return defuse(s) if mid_line else s


def safe_line(value: object) -> str:
    """A value written as a whole line: `safe`, and a backslash in front of a workflow command."""
    s = safe(value)
    return "\\" + s if s.lstrip(" \t").startswith(COMMAND_PREFIXES) else s


def safe_lines(text: str, *, mid_line: bool = True) -> str:
    """A composed text whose line breaks (and tabs) are its layout: every other control character
    escaped, and a line break that would start a CI workflow command shown as `\\n` instead.

    The caller cannot tell its own line breaks from a value's here; values should go through
    `safe` first. This is the guard for text composed elsewhere (error messages, reports); the
    first line is the writer's to guard (the CLI's consoles do).
    """
    s = _COMMAND_LINE.sub(r"\\n", _CONTROL_BUT_LAYOUT.sub(_escaped, text))
    return defuse(s) if mid_line else s


def _flat(value: object) -> str:
    return defuse(_CONTROL.sub(" ", str(value)))


def text(value: object) -> str:
    """Prose in a table cell or a line: shown as written, never as markup or HTML."""
    s = _flat(value).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def literal(value: object, *, limit: int | None = None) -> str:
    """A value from outside (a file's content, what the cloud holds) in code style, cut to `limit`.

    `<code>` around the `text` form rather than a code span: a span shows `<`, `>` and `&` raw
    to whatever renders it next, this form holds no markup at all, and still reads the same.
    """
    s = _flat(value)
    if limit is not None and len(s) > limit:
        s = s[: limit - 3] + "..."
    return f"<code>{text(s)}</code>"


def code(value: object, *, limit: int | None = None) -> str:
    """An inline code span (`value`), cut to `limit` characters with `...` when longer."""
    s = _flat(value).replace("`", "'")
    if limit is not None and len(s) > limit:
        s = s[: limit - 3] + "..."
    return "`" + s.replace("|", "\\|") + "`"
