"""The one Markdown escaper, for every Markdown cloudorch writes (plan and drift comments, policy reports).

Two forms with one rule, "nothing in a value can break the row or become markup": `text` for
prose (pipes, backticks, `<` and `>` and backslashes escaped), `code` for an inline code span
(pipes escaped, backticks replaced; `<` and `>` stay, since a code span never renders HTML). In
both, control characters (newlines above all, which would end a table row) become spaces.
Imports nothing of cloudorch.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _flat(value: object) -> str:
    return _CONTROL.sub(" ", str(value))


def text(value: object) -> str:
    """Prose in a table cell or a line: shown as written, never as markup or HTML."""
    s = _flat(value).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return s.replace("<", "&lt;").replace(">", "&gt;")


def code(value: object, *, limit: int | None = None) -> str:
    """An inline code span (`value`), cut to `limit` characters with `...` when longer."""
    s = _flat(value).replace("`", "'")
    if limit is not None and len(s) > limit:
        s = s[: limit - 3] + "..."
    return "`" + s.replace("|", "\\|") + "`"
