"""What the CI host tests share: a clean environment per host, bash runs of pipeline scripts, the
way each host reads its commands out of a log, the documented report formats, and a stand-in for
the GitLab REST API.

Each host's reader follows the host's own rule: GitHub Actions reads a workflow command at the
start of a line (after blanks), Azure Pipelines' agent the first `##vso[` anywhere in a line, on
stdout and stderr, lines split at `\n` and at a bare `\r`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
HERE = Path(__file__).parent
BIN = Path(sys.executable).parent

#: variables of any CI host (or of cloudorch) that the test machine might have set itself
_HOST_VARS = re.compile(r"^(CLOUDORCH_|GITHUB_|GITLAB_|CI_|TF_BUILD$|AGENT_|BUILD_|SYSTEM_|RUNNER_|CI$)")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _HOST_VARS.match(k)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def log(self) -> str:
        """What the host's log holds: both streams (both are read for commands)."""
        return self.stdout + "\n" + self.stderr


def run_bash(script: str, cwd: Path, env: dict[str, str], *, flags: tuple[str, ...] = ("-eo", "pipefail")) -> Ran:
    path = cwd / f".step-{abs(hash(script))}.sh"
    path.write_text(script)
    # bytes, decoded here: text mode would turn the `\r` of GitLab's section markers into `\n`
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", *flags, str(path)], cwd=cwd, env=env, capture_output=True, timeout=180
    )
    path.unlink()
    return Ran(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def cloudorch(args: list[str], cwd: Path, env: dict[str, str]) -> Ran:
    argv = [sys.executable, "-m", "cloudorch", *args]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=120)
    return Ran(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


# -- how each host reads its commands -----------------------------------------------------------------


@dataclass
class Command:
    name: str
    props: dict[str, str] = field(default_factory=dict)
    data: str = ""


def _lines(text: str) -> list[str]:
    return re.split(r"\r\n|\n|\r", text)


def azure_commands(text: str) -> list[Command]:
    """The logging commands Azure's agent would act on: the first `##vso[` of each line, its
    `area.event`, properties split at `;` and `=`, and the data after the first `]`."""
    out = []
    for line in _lines(text):
        start = line.find("##vso[")
        if start < 0:
            continue
        end = line.find("]", start)
        if end < 0:
            continue
        info = line[start + len("##vso[") : end]
        name, _, rest = info.partition(" ")
        props = {}
        for pair in filter(None, (p.strip() for p in rest.split(";"))):
            key, _, value = pair.partition("=")
            props[key.lower()] = azure_unescape(value)
        out.append(Command(name, props, azure_unescape(line[end + 1 :])))
    return out


def azure_unescape(value: str) -> str:
    for token, ch in (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"), ("%AZP25", "%")):
        value = value.replace(token, ch)
    return value


def azure_groups(text: str) -> list[str]:
    return [line for line in _lines(text) if line.startswith(("##[group]", "##[endgroup]"))]


def github_commands(text: str) -> list[Command]:
    """The workflow commands GitHub's runner would act on: a line that starts (after blanks) with `::`."""
    out = []
    for line in text.split("\n"):
        m = re.match(r"^[ \t]*::([A-Za-z-]+)( [^:]*)?::(.*)$", line)
        if not m:
            continue
        props = {}
        for pair in filter(None, (m.group(2) or "").strip().split(",")):
            key, _, value = pair.partition("=")
            props[key] = github_unescape(value, prop=True)
        out.append(Command(m.group(1), props, github_unescape(m.group(3))))
    return out


def github_unescape(value: str, *, prop: bool = False) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else [])
    for token, ch in pairs:
        value = value.replace(token, ch)
    return value.replace("%25", "%")


# -- the documented report formats ----------------------------------------------------------------------

#: GitLab's Code Quality report (docs.gitlab.com/ci/testing/code_quality, "Code Quality report
#: format"): a JSON array of issues with description, check_name, fingerprint, severity (info, minor,
#: major, critical, blocker) and location.path with location.lines.begin (or positions.begin.line)
CODE_QUALITY_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object",
                "required": ["path"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "lines": {
                        "type": "object",
                        "required": ["begin"],
                        "properties": {"begin": {"type": "integer", "minimum": 1}},
                    },
                },
                "anyOf": [{"required": ["lines"]}, {"required": ["positions"]}],
            },
        },
    },
}

#: GitLab's Terraform report (`artifacts:reports:terraform`, docs "Terraform integration in merge
#: requests"): an object of the three counts; GitLab's parser (Gitlab::Ci::Parsers::Terraform::Tfplan)
#: accepts exactly the keys create, update, delete, in this order
TERRAFORM_REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["create", "update", "delete"],
    "additionalProperties": False,
    "properties": {k: {"type": "integer", "minimum": 0} for k in ("create", "update", "delete")},
}


def check_code_quality(path: Path) -> list[dict[str, Any]]:
    import jsonschema

    doc: list[dict[str, Any]] = json.loads(path.read_text())
    jsonschema.validate(doc, CODE_QUALITY_SCHEMA)
    assert len({i["fingerprint"] for i in doc}) == len(doc), "a fingerprint names one issue"
    return doc


def check_terraform_report(path: Path) -> dict[str, int]:
    import jsonschema

    doc: dict[str, int] = json.loads(path.read_text())
    jsonschema.validate(doc, TERRAFORM_REPORT_SCHEMA)
    assert list(doc) == ["create", "update", "delete"]
    return doc


# -- a stand-in for GitLab's REST API (merge-request notes) ------------------------------------------------


@dataclass
class FakeGitLab:
    url: str
    notes: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)  # token -> user id
    page_size: int = 2  # small, so that finding the note has to follow X-Next-Page

    def note(self, body: str, author: int, *, system: bool = False) -> dict[str, Any]:
        n = {"id": 100 + len(self.notes), "body": body, "author": {"id": author}, "system": system}
        self.notes.append(n)
        return n


@pytest.fixture
def gitlab_api() -> Iterator[FakeGitLab]:
    state = FakeGitLab("")
    prefix = re.compile(r"^/api/v4/projects/(?P<project>[^/]+)/merge_requests/(?P<mr>\d+)/notes(?:/(?P<note>\d+))?$")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _user(self) -> int | None:
            job = self.headers.get("JOB-TOKEN")
            private = self.headers.get("PRIVATE-TOKEN")
            if job is not None:
                return state.users.get("job:" + job)
            if private is not None:
                return state.users.get(private)
            return None

        def _send(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            state.calls.append((method, url.path))
            user = self._user()
            if user is None:
                self._send(401, {"message": "401 Unauthorized"})
                return
            if url.path == "/api/v4/user" and method == "GET":
                if self.headers.get("JOB-TOKEN") is not None:
                    self._send(403, {"message": "403 Forbidden"})
                else:
                    self._send(200, {"id": user, "username": f"user{user}"})
                return
            m = prefix.match(url.path)
            if not m or m["project"] != "42" or m["mr"] != "7":
                self._send(404, {"message": "404 Not Found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            if method == "GET" and m["note"] is None:
                page = int(parse_qs(url.query).get("page", ["1"])[0])
                chunk = state.notes[(page - 1) * state.page_size : page * state.page_size]
                more = page * state.page_size < len(state.notes)
                self._send(200, chunk, {"X-Next-Page": str(page + 1) if more else ""})
            elif method == "POST" and m["note"] is None:
                self._send(201, state.note(body["body"], user))
            elif method == "PUT" and m["note"] is not None:
                for n in state.notes:
                    if n["id"] == int(m["note"]):
                        if n["author"]["id"] != user:
                            self._send(403, {"message": "403 Forbidden"})
                            return
                        n["body"] = body["body"]
                        self._send(200, n)
                        return
                self._send(404, {"message": "404 Not Found"})
            else:
                self._send(405, {"message": "405 Method Not Allowed"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
