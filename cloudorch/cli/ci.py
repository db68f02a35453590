"""`cloudorch ci ...`: what a pipeline's script asks of its host, said the host's way.

`output` sets step outputs (`$GITHUB_OUTPUT`, Azure's `task.setvariable`, GitLab's dotenv report),
`terraform-report` writes the counts of a saved plan in GitLab's Terraform report format (the
merge-request widget), `gitlab-note` keeps one merge-request note per plan up to date, and `host`
prints the detected host. `templates/` (GitLab), `examples/ci/azure-pipelines/` and `action.yml`
call them; `cihost.py` holds the host logic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudorch import markdown
from cloudorch.cli import cihost
from cloudorch.cli.common import app
from cloudorch.cli.options import EXITS, simple_command
from cloudorch.cli.output import Output
from cloudorch.errors import CloudorchError, ConfigError

ci_app = typer.Typer(
    help="For pipeline scripts: set outputs, write GitLab's Terraform report, keep the merge-request note.",
    no_args_is_help=True,
)
app.add_typer(ci_app, name="ci", short_help="Helpers for CI pipeline scripts (outputs, reports, notes).")

CiHostOpt = Annotated[
    str | None,
    typer.Option(
        "--ci-host",
        metavar="github|gitlab|azure|none|auto",
        envvar="CLOUDORCH_CI_HOST",
        help="The CI host to speak to (default auto: detected from GITHUB_ACTIONS, GITLAB_CI, TF_BUILD).",
        show_default=False,
    ),
]
#: the first line of every plan summary (cli/markdown.py) and so of every note this keeps
_MARKER_LINE = "<!-- cloudorch-plan: "


@simple_command(
    ci_app,
    "host",
    summary="Print the CI host cloudorch speaks to (github, gitlab, azure or none).",
    example="cloudorch ci host",
    exits=f"0 printed, {EXITS}",
)
def host(ci_host: CiHostOpt = None) -> int:
    """Print the CI host: forced by --ci-host / CLOUDORCH_CI_HOST, else detected."""
    Output.current().plain(cihost.configure(ci_host) or "none")
    return 0


@simple_command(
    ci_app,
    "output",
    summary="Set step outputs the host's way.",
    example="cloudorch ci output has-changes=true exit-code=2",
    exits=f"0 set, {EXITS}",
)
def output(
    pairs: Annotated[list[str], typer.Argument(metavar="NAME=VALUE...", help="Outputs to set.", show_default=False)],
    ci_host: CiHostOpt = None,
) -> int:
    """Set outputs: appended to $GITHUB_OUTPUT on GitHub, `##vso[task.setvariable ...;isOutput=true]`
    on Azure Pipelines, a line of the dotenv report ($CLOUDORCH_DOTENV, default cloudorch.env) on
    GitLab. Values are escaped: none can add a line, a variable or a command."""
    host_name = cihost.configure(ci_host)
    if host_name is None:
        raise ConfigError("no CI host to set outputs on", hint="run inside a pipeline, or pass --ci-host")
    lines = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{markdown.safe(pair)!r}: expected NAME=VALUE", hint="e.g. has-changes=true")
        line = cihost.set_output(host_name, name, value)
        if line is not None:
            lines.append(line)
    if lines:
        import sys

        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    return 0


@simple_command(
    ci_app,
    "terraform-report",
    summary="Write a saved plan's counts as GitLab's Terraform report.",
    example="cloudorch ci terraform-report plan.json -o tfplan.json",
    exits=f"0 written, {EXITS}",
)
def terraform_report(
    saved: Annotated[Path, typer.Argument(metavar="SAVED_PLAN", help="A plan saved with `plan -o`.")],
    out_file: Annotated[
        Path,
        typer.Option("-o", "--out", metavar="FILE", help="Where to write the report (artifacts:reports:terraform)."),
    ] = Path("tfplan.json"),
) -> int:
    """`{"create": N, "update": N, "delete": N}` for the merge-request widget; a replacement counts
    as a delete and a create, as Terraform's plan does."""
    from cloudorch.api import ChangeSet

    cs = ChangeSet.load(saved)
    out_file.write_text(json.dumps(cihost.terraform_report(cs.counts())) + "\n", encoding="utf-8")
    return 0


# -- the merge-request note ------------------------------------------------------------------------


class GitLabApi:
    """The few GitLab REST calls the note needs, with a job token or a project/personal token."""

    def __init__(self, base: str, *, private_token: str | None, job_token: str | None, timeout: float = 30) -> None:
        self.base = base.rstrip("/")
        if private_token:
            self.headers = {"PRIVATE-TOKEN": private_token}
        elif job_token:
            self.headers = {"JOB-TOKEN": job_token}
        else:
            raise ConfigError(
                "no GitLab token to write the merge-request note with",
                hint="set CLOUDORCH_GITLAB_TOKEN (a project access token with the api scope) or run in a job "
                "(CI_JOB_TOKEN)",
            )
        self.job_token = not private_token
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[Any, dict[str, str]]:
        # imported here: urllib.request pulls in http.client, email and ssl, which every other command would pay for
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=dict(self.headers))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null"), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            raise CloudorchError(
                f"GitLab API {method} {markdown.safe(path)}: HTTP {exc.code} {markdown.safe(exc.reason)}",
                hint="the token needs permission to read and write merge-request notes (a project access token "
                "with the api scope and the Reporter role; CI_JOB_TOKEN cannot on every GitLab)",
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CloudorchError(f"GitLab API {method} {markdown.safe(path)}: {markdown.safe(exc)}") from None


def upsert_note(api: GitLabApi, project: str, mr: str, body: str, *, author_id: int | None) -> tuple[str, int]:
    """Create the note, or update the one whose first line is the same marker and whose author is
    the identity this job writes as (anyone can write a note that starts with the marker).
    Returns ("created" | "updated", note id)."""
    from urllib.parse import quote

    marker = body.split("\n", 1)[0]
    base = f"/projects/{quote(project, safe='')}/merge_requests/{quote(mr, safe='')}/notes"
    if author_id is None and not api.job_token:
        me, _ = api.call("GET", "/user")
        author_id = int(me["id"])
    # with a job token and no known author, no earlier note can be told from a forged one
    page: str | None = "1" if author_id is not None else None
    found: int | None = None
    while page and found is None:
        notes, headers = api.call("GET", f"{base}?per_page=100&sort=asc&order_by=created_at&page={page}")
        for note in notes or []:
            if note.get("system"):
                continue
            if str(note.get("body", "")).split("\n", 1)[0] != marker:
                continue
            if author_id is not None and (note.get("author") or {}).get("id") != author_id:
                continue
            found = int(note["id"])
            break
        page = headers.get("x-next-page") or None
    if found is not None:
        api.call("PUT", f"{base}/{found}", {"body": body})
        return "updated", found
    created, _ = api.call("POST", base, {"body": body})
    return "created", int(created["id"])


@simple_command(
    ci_app,
    "gitlab-note",
    summary="Create or update the plan summary's note on the merge request.",
    example="cloudorch plan plans/shop.yaml --format markdown > plan.md\ncloudorch ci gitlab-note plan.md",
    exits=f"0 note written or nothing to write, {EXITS}",
)
def gitlab_note(
    body_file: Annotated[Path, typer.Argument(metavar="SUMMARY_FILE", help="`plan --format markdown` output.")],
) -> int:
    """One note per plan on the merge request, edited in place: found by the summary's marker
    (`<!-- cloudorch-plan: KEY -->`) among the notes of the identity this job writes as.
    Reads CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID, and CLOUDORCH_GITLAB_TOKEN (a project
    access token) or else CI_JOB_TOKEN (notes are then the pipeline user's, GITLAB_USER_ID)."""
    out = Output.current()
    env = os.environ
    try:
        body = body_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{markdown.safe(body_file)}: {markdown.safe(exc.strerror)}") from None
    first = body.split("\n", 1)[0]
    if not body.strip() or not (first.startswith(_MARKER_LINE) and first.endswith("-->")):
        out.plain("gitlab-note: the summary has no cloudorch marker on its first line: no note written", err=True)
        return 0
    mr = env.get("CI_MERGE_REQUEST_IID", "")
    if not mr:
        out.plain("gitlab-note: not a merge-request pipeline (no CI_MERGE_REQUEST_IID): no note written", err=True)
        return 0
    missing = [name for name in ("CI_API_V4_URL", "CI_PROJECT_ID") if not env.get(name)]
    if missing:
        raise ConfigError(f"{', '.join(missing)} not set", hint="gitlab-note runs inside a GitLab CI job")
    api = GitLabApi(
        env["CI_API_V4_URL"],
        private_token=env.get("CLOUDORCH_GITLAB_TOKEN") or None,
        job_token=env.get("CI_JOB_TOKEN") or None,
    )
    author = env.get("GITLAB_USER_ID") if api.job_token else None
    verb, note_id = upsert_note(
        api, env["CI_PROJECT_ID"], mr, body, author_id=int(author) if author and author.isdigit() else None
    )
    out.plain(f"gitlab-note: {verb} note {note_id} on merge request !{markdown.safe(mr)}", err=True)
    return 0
