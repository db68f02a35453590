"""Guessing, before typer parses the flags, which state store a command will open, so its SDK
starts loading in a store worker (`cloudorch.state.backends.worker`) on another core.

The guess reads only the arguments, `CLOUDORCH_BACKEND` and a plan file's text. It is cheap on
purpose because it runs at the start of every command: nothing heavier than `re` and `json` is
imported unless it finds a remote store. It reads the text with two regular expressions rather
than a YAML parser: PyYAML's import and a pure-Python parse of a large plan cost more than the
head start is worth, and the plan is parsed properly moments later anyway. The expressions
match what the plan-file grammar allows for a top-level `backend:` block (block or flow style,
quoted or bare key, comments ignored); a wrong guess costs an idle worker, a missed one only the
speed-up.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

#: commands that open a plan's state backend: a store worker started for them is used
STATE_COMMANDS = frozenset(
    {"plan", "apply", "destroy", "drift", "rollback", "recover", "output", "force-unlock", "state", "release", "policy"}
)

#: a top-level `backend:` key and its block: the rest of its line and every indented, comment or blank line after
_BACKEND_BLOCK = re.compile(r"""^["']?backend["']?[ \t]*:(.*(?:\n(?:[ \t#].*)?)*)""", re.MULTILINE)
#: a YAML comment: `#` at the start of a line's content or after whitespace (a `#` inside a URL is not one)
_COMMENT = re.compile(r"(?:^|[ \t])#.*$", re.MULTILINE)
#: the block's own `url:` key (first in its line, or in a flow mapping), and the scheme of its value
_URL_SCHEME = re.compile(
    r"""(?:^[ \t]*|[{,][ \t]*)["']?url["']?[ \t]*:[ \t]*["']?([a-z][a-z0-9]*)://""", re.MULTILINE
)
_SAVED_PLAN_FILE = re.compile(rb'"plan_file":\s*("(?:[^"\\]|\\.)*")')


def prefetch_store(args: list[str]) -> None:
    """Start the worker for the store the command `args` will open: `--backend`, else
    `CLOUDORCH_BACKEND`, else the first argument naming a file whose text names a remote store."""
    if not args or args[0] not in STATE_COMMANDS or "--sandbox" in args or "--help" in args:
        return
    if os.environ.get("CLOUDORCH_SANDBOX", "").lower() in ("1", "true", "yes", "on"):
        return
    for i, arg in enumerate(args):
        if arg == "--backend" and i + 1 < len(args):
            _prefetch(args[i + 1].partition("://")[0])
            return
        if arg.startswith("--backend="):
            _prefetch(arg.partition("=")[2].partition("://")[0])
            return
    if os.environ.get("CLOUDORCH_BACKEND"):
        _prefetch(os.environ["CLOUDORCH_BACKEND"].partition("://")[0])
        return
    for arg in args[1:]:  # `--var-file vars.yaml plan.yaml`: the first file may not be the plan
        if arg.startswith("-") or not Path(arg).is_file():
            continue
        try:
            scheme = scheme_in_plan(_plan_text(Path(arg)))
        except OSError:
            continue  # loading the plan reports it
        if scheme is not None:
            _prefetch(scheme)
            return


def scheme_in_plan(text: str) -> str | None:
    """The scheme of the top-level `backend:` block's url in a plan file's text, if plainly written."""
    if "backend" not in text:
        return None  # a substring search, ~20x faster than the line-anchored expression on a large plan
    block = _BACKEND_BLOCK.search(text)
    if block is None:
        return None
    url = _URL_SCHEME.search(_COMMENT.sub("", block.group(1)))
    return url.group(1) if url else None


def _plan_text(path: Path) -> str:
    """The plan file's text; for a saved plan (`plan -o`, JSON), the text of the plan file it
    names near its top, which `apply` reads again for the backend. (`ChangeSet.looks_saved` says
    the same, but importing `cloudorch.changes` loads pydantic, ~0.15 s before the worker starts.)"""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.lstrip().startswith(b"{"):
        named = _SAVED_PLAN_FILE.search(head)
        if named is None:
            return ""
        path = Path(json.loads(named.group(1)))
    return path.read_text(encoding="utf-8", errors="replace")


def _prefetch(scheme: str) -> None:
    """A worker for `scheme`, unless this process has loaded that SDK already (a program calling
    the CLI in process, a test): then the store costs nothing more here, and a worker would only
    load it a second time."""
    from cloudorch import api

    if scheme not in api.STATE_SDKS or api.STATE_SDKS[scheme][0] in sys.modules:
        return
    api.prefetch_state_store(scheme)
