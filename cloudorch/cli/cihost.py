"""The CI host cloudorch runs on, and how to speak to it: GitHub Actions, GitLab CI, Azure Pipelines.

A host is detected from its own variables (`GITHUB_ACTIONS=true`, `GITLAB_CI=true`, `TF_BUILD=True`)
or forced with `--ci-host` / `CLOUDORCH_CI_HOST` (`github`, `gitlab`, `azure`, `none`, `auto`). On a
host, every located error and every policy finding is also an annotation on its file, line and
column: a workflow command on GitHub (`::error file=...`), a logging command on Azure Pipelines
(`##vso[task.logissue ...]`), and an entry of GitLab's Code Quality report, which the merge-request
widget shows. Groups fold long output; outputs are set the host's way (`$GITHUB_OUTPUT`,
`##vso[task.setvariable ...;isOutput=true]`, a dotenv report on GitLab).

No value can inject a host command. Every value goes through `cloudorch.markdown`'s rule first
(`safe`: control characters shown escaped, so a value never ends the line it is on), then through
the host's own escaping of a command's properties and data. Azure's agent reads `##vso[` anywhere
in a line, not only at its start: `defuse` breaks it in any text written to the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cloudorch import markdown
from cloudorch.errors import CloudorchError, ConfigError

GITHUB, GITLAB, AZURE = "github", "gitlab", "azure"
HOSTS = (GITHUB, GITLAB, AZURE)
CHOICES = (*HOSTS, "none", "auto")
#: where the findings go on GitLab unless CLOUDORCH_CODE_QUALITY names another file
CODE_QUALITY_FILE = "gl-code-quality-report.json"
#: where outputs go on GitLab unless CLOUDORCH_DOTENV names another file (an `artifacts:reports:dotenv`)
DOTENV_FILE = "cloudorch.env"
AZURE_PREFIX = "##vso["

_UNSET = object()
_forced: object = _UNSET  # what --ci-host chose for this process; _UNSET: detect from the environment


def detect(env: Mapping[str, str] | None = None) -> str | None:
    """The host whose own variables are set, or None. GitHub first: a self-hosted runner may sit
    on a machine where another host's variables leak in, but GITHUB_ACTIONS is set by the runner."""
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS", "").lower() == "true":
        return GITHUB
    if env.get("GITLAB_CI", "").lower() == "true":
        return GITLAB
    if env.get("TF_BUILD", "").lower() == "true":
        return AZURE
    return None


def resolve(choice: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The host for a `--ci-host` value: `auto` (or nothing) detects, `none` disables."""
    env = os.environ if env is None else env
    value = (choice or env.get("CLOUDORCH_CI_HOST") or "auto").strip().lower()
    if value not in CHOICES:
        raise ConfigError(
            f"--ci-host {markdown.safe(choice or env.get('CLOUDORCH_CI_HOST'))}: unknown CI host",
            hint="use " + ", ".join(CHOICES),
        )
    if value == "auto":
        return detect(env)
    return None if value == "none" else value


def configure(choice: str | None) -> str | None:
    """Fix this process's host from the `--ci-host` flag (None: the variable, else detection)."""
    global _forced
    host = resolve(choice)
    _forced = host
    return host


def current() -> str | None:
    """The host of this process: what `configure` chose, else detected (errors before any flag)."""
    if _forced is not _UNSET:
        return _forced if isinstance(_forced, str) else None
    try:
        return resolve(None)
    except ConfigError:
        return detect()


def reset() -> None:
    """Forget `configure` (one process may run several commands: tests, other programs)."""
    global _forced
    _forced = _UNSET


# -- escaping -----------------------------------------------------------------------------------


def defuse(text: str) -> str:
    """`text` with no `##vso[` left anywhere in it: Azure's agent acts on one wherever it starts."""
    return markdown.defuse(text)


def defuse_json(text: str) -> str:
    """A JSON text with no `##vso[` in it and the same value: `##vso[` can only be inside a string,
    where `\\u0023` is `#`."""
    return text.replace(AZURE_PREFIX, "\\u0023#vso[")


def github_data(value: object) -> str:
    """The message of a workflow command: one line whatever the value holds."""
    text = markdown.safe_lines(str(value), mid_line=False)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(value: object) -> str:
    """A property of a workflow command (`file=`, `title=`): `,` and `:` end one, so they are escaped."""
    text = github_data(markdown.safe(value, mid_line=False))
    return text.replace(":", "%3A").replace(",", "%2C")


# In a logging command of our own, the agent has found the command at the line's start already:
# a `##vso[` later in the line is data, so values keep it as written (a file name stays the file's).


def azure_data(value: object) -> str:
    """The data of a logging command (after `]`): one line, so no second command."""
    text = markdown.safe_lines(str(value), mid_line=False)
    return text.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def azure_property(value: object) -> str:
    """A property value of a logging command: `;` ends one and `]` ends them all, so both are escaped."""
    text = azure_data(markdown.safe(value, mid_line=False))
    return text.replace(";", "%3B").replace("]", "%5D")


def _section_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "cloudorch"


# -- groups, annotations, outputs -----------------------------------------------------------------


def group_start(host: str | None, title: str, name: str = "cloudorch") -> str | None:
    """The line that opens a foldable group, or None off a host."""
    if host == GITHUB:
        return "::group::" + github_data(markdown.safe(title))
    if host == AZURE:
        return "##[group]" + azure_data(markdown.safe(title))
    if host == GITLAB:
        return f"\x1b[0Ksection_start:{int(time.time())}:{_section_name(name)}[collapsed=true]\r\x1b[0K" + defuse(
            markdown.safe(title)
        )
    return None


def group_end(host: str | None, name: str = "cloudorch") -> str | None:
    if host == GITHUB:
        return "::endgroup::"
    if host == AZURE:
        return "##[endgroup]"
    if host == GITLAB:
        return f"\x1b[0Ksection_end:{int(time.time())}:{_section_name(name)}\r\x1b[0K"
    return None


@dataclass(frozen=True)
class Finding:
    """One thing to show on a line of a file: a located error or a policy finding."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    severity: str = "error"  # error | warning | notice
    rule: str = "cloudorch"
    title: str | None = None

    def fingerprint(self) -> str:
        import hashlib

        key = "\0".join(str(x) for x in (self.rule, self.file, self.line, self.column, self.message))
        return hashlib.sha256(key.encode()).hexdigest()[:32]


def repo_path(file: str, env: Mapping[str, str] | None = None) -> str:
    """`file` as the host names files: relative to the checkout, with `/`; unchanged outside it."""
    env = os.environ if env is None else env
    root = env.get("GITHUB_WORKSPACE") or env.get("CI_PROJECT_DIR") or env.get("BUILD_SOURCESDIRECTORY")
    path = Path(file)
    if root:
        try:
            path = path.resolve().relative_to(Path(root).resolve())
        except (ValueError, OSError):
            path = Path(file)
    return path.as_posix()


def annotation(host: str | None, f: Finding, env: Mapping[str, str] | None = None) -> str | None:
    """The log line that annotates `f` on GitHub or Azure (None elsewhere: GitLab uses a report)."""
    if host == GITHUB:
        level = f.severity if f.severity in ("error", "warning", "notice") else "error"
        props: list[str] = []
        if f.file:
            props.append("file=" + github_property(repo_path(f.file, env)))
            if f.line:
                props.append(f"line={int(f.line)}")
                if f.column:
                    props.append(f"col={int(f.column)}")
        props.append("title=" + github_property(f.title or f.rule))
        return f"::{level} {','.join(props)}::{github_data(f.message)}"
    if host == AZURE:
        level = "warning" if f.severity in ("warning", "notice") else "error"
        parts = [f"type={level}"]
        if f.file:
            parts.append("sourcepath=" + azure_property(repo_path(f.file, env)))
            if f.line:
                parts.append(f"linenumber={int(f.line)}")
                if f.column:
                    parts.append(f"columnnumber={int(f.column)}")
        parts.append("code=" + azure_property(f.rule))
        return f"##vso[task.logissue {';'.join(parts)}]{azure_data(f.message)}"
    return None


_CQ_SEVERITY = {"error": "major", "warning": "minor", "notice": "info"}


def code_quality(findings: Iterable[Finding], env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """GitLab's Code Quality report (a subset of Code Climate's issue format) for `findings`."""
    issues = []
    for f in findings:
        issues.append(
            {
                "type": "issue",
                "description": markdown.safe_lines(f.message, mid_line=False),  # a report, not a log
                "check_name": f.rule,
                "fingerprint": f.fingerprint(),
                "severity": _CQ_SEVERITY.get(f.severity, "major"),
                "location": {
                    "path": repo_path(f.file, env) if f.file else "",
                    "lines": {"begin": int(f.line or 1)},
                },
            }
        )
    return issues


def merge_code_quality(path: Path, findings: Iterable[Finding], env: Mapping[str, str] | None = None) -> None:
    """Add `findings` to the Code Quality report at `path` (several commands in one job add up)."""
    issues: list[dict[str, Any]] = []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(old, list):
            issues = [i for i in old if isinstance(i, dict)]
    except (OSError, ValueError):
        issues = []
    seen = {i.get("fingerprint") for i in issues}
    for issue in code_quality(findings, env):
        if issue["fingerprint"] not in seen:
            seen.add(issue["fingerprint"])
            issues.append(issue)
    _write_atomic(path, json.dumps(issues, indent=1) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    import uuid

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def emit(findings: list[Finding], host: str | None = None, stream: IO[str] | None = None) -> None:
    """Annotate `findings` on the host: lines on stderr (GitHub and Azure read both streams, and
    stdout may be a document), or the Code Quality report on GitLab."""
    host = current() if host is None else host
    if not findings or host is None:
        return
    if host == GITLAB:
        target = Path(os.environ.get("CLOUDORCH_CODE_QUALITY") or CODE_QUALITY_FILE)
        try:
            merge_code_quality(target, findings)
        except OSError as exc:
            print(f"cloudorch: cannot write the Code Quality report {markdown.safe(target)}: "
                  f"{markdown.safe(exc.strerror)}", file=sys.stderr)  # fmt: skip
        return
    stream = sys.stderr if stream is None else stream
    stream.flush()
    for f in findings:
        line = annotation(host, f)
        if line is not None:
            stream.write(line + "\n")
    stream.flush()


def error_finding(exc: CloudorchError) -> Finding | None:
    """The annotation of a located error (an unlocated one is only a log line)."""
    loc = exc.location
    if loc is None or not loc.file:
        return None
    message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    kind = type(exc).__name__
    return Finding(message, loc.file, loc.line, loc.column, "error", kind, "cloudorch: " + kind)


def sarif_findings(doc: Any) -> list[Finding]:
    """The policy findings of a SARIF report cloudorch wrote (file and line from its `locate`)."""
    out: list[Finding] = []
    for run in (doc or {}).get("runs") or []:
        for r in run.get("results") or []:
            severity = "warning" if r.get("level") == "warning" else "error"
            if r.get("suppressions"):
                severity = "notice"  # overridden: shown, not failing
            file = line = None
            for loc in r.get("locations") or []:
                phys = loc.get("physicalLocation") or {}
                file = (phys.get("artifactLocation") or {}).get("uri")
                line = (phys.get("region") or {}).get("startLine")
                break
            rule = str(r.get("ruleId") or "policy")
            out.append(Finding(str((r.get("message") or {}).get("text", "")), file, line, None, severity,
                               rule, "cloudorch policy: " + rule))  # fmt: skip
    return out


# -- outputs --------------------------------------------------------------------------------------

_GITHUB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_AZURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def set_output(host: str | None, name: str, value: str, env: Mapping[str, str] | None = None) -> str | None:
    """Set output `name` the host's way; returns a line to print (Azure), or None (a file was written)."""
    import uuid

    env = os.environ if env is None else env
    if host == GITHUB:
        if not _GITHUB_NAME.match(name):
            raise ConfigError(f"output name {markdown.safe(name)!r}: use letters, digits, '_' and '-'")
        target = env.get("GITHUB_OUTPUT")
        if not target:
            raise ConfigError("GITHUB_OUTPUT is not set", hint="outputs are set inside a GitHub Actions step")
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        while delimiter in value:  # a value cannot hold the line that ends it
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        return None
    if host == AZURE:
        if not _AZURE_NAME.match(name):
            raise ConfigError(f"output name {markdown.safe(name)!r}: use letters, digits, '_' and '.'")
        return f"##vso[task.setvariable variable={name};isOutput=true]{azure_data(value)}"
    if host == GITLAB:
        key = name.replace("-", "_").upper()
        if not re.match(r"^[A-Z_][A-Z0-9_]*$", key):
            raise ConfigError(f"output name {markdown.safe(name)!r}: use letters, digits, '_' and '-'")
        target = env.get("CLOUDORCH_DOTENV") or DOTENV_FILE
        # a dotenv report holds one line per variable: no value may add a line (or a comment)
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"{key}={markdown.safe(value, mid_line=False)}\n")
        return None
    return None


def terraform_report(counts: Mapping[str, int]) -> dict[str, int]:
    """GitLab's Terraform report (`artifacts:reports:terraform`): exactly these keys, in this
    order, as GitLab's parser requires. A replacement is a delete and a create, as in Terraform."""
    replace = int(counts.get("replace", 0))
    return {
        "create": int(counts.get("create", 0)) + replace,
        "update": int(counts.get("update", 0)),
        "delete": int(counts.get("delete", 0)) + replace,
    }


# -- the CLI's hooks --------------------------------------------------------------------------------


def annotate_error(exc: CloudorchError) -> None:
    """The error handler's call (cli/__init__.py): a located error becomes one annotation."""
    host = current()
    finding = error_finding(exc) if host is not None else None
    if finding is not None:
        emit([finding], host)


@contextlib.contextmanager
def policy_annotations(common: dict[str, Any]) -> Iterator[None]:
    """Around a command that judges policies (options.py): on a host, ask for one more policy
    report, SARIF in a temporary folder, whose results carry the file and line `locate` found for
    each finding; once the command is done (denied or not), annotate each of them."""
    host = current()
    if host is None or "policy_report" not in common:
        yield
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cloudorch-ci-") as tmp:
        sarif = Path(tmp) / "policy.sarif"
        common["policy_report"] = [*(common.get("policy_report") or []), f"sarif={sarif}"]
        try:
            yield
        finally:
            try:
                doc = json.loads(sarif.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                doc = None
            if doc is not None:
                emit(sarif_findings(doc), host)
