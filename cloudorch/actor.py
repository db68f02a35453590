"""Who is running cloudorch: the one answer for state events, journals, approvals, overrides and
the policies' `input.user`.

Order: `CLOUDORCH_ACTOR`, then the user variables CI systems set, then the OS user (the same
name a state lock records). Reads the environment only; imports nothing of cloudorch.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass

#: CI variables naming the person who triggered the run, most specific first
CI_ACTOR_VARIABLES = (
    "GITHUB_ACTOR",  # GitHub Actions
    "GITLAB_USER_LOGIN",  # GitLab CI
    "BUILD_REQUESTEDFOR",  # Azure Pipelines
    "CIRCLE_USERNAME",  # CircleCI
    "BUILDKITE_BUILD_CREATOR",  # Buildkite
    "BITBUCKET_STEP_TRIGGERER_UUID",  # Bitbucket Pipelines
    "BUILD_USER_ID",  # Jenkins (build-user-vars plugin)
    "DRONE_COMMIT_AUTHOR",  # Drone
)


@dataclass(frozen=True)
class Actor:
    name: str
    source: str  # the variable it came from, or `os-user`


def os_user() -> str:
    """The OS user; with no passwd entry (containers) the uid, so two such users stay apart."""
    try:
        return getpass.getuser()
    except Exception:  # getpass raises KeyError or OSError, depending on the platform
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def current_actor(environ: Mapping[str, str] | None = None) -> Actor:
    env = os.environ if environ is None else environ
    for var in ("CLOUDORCH_ACTOR", *CI_ACTOR_VARIABLES):
        value = env.get(var, "").strip()
        if value:
            return Actor(value, var)
    return Actor(os_user(), "os-user")


def actor_name(environ: Mapping[str, str] | None = None) -> str:
    """The actor's name alone, as state events and the release ledger record it."""
    return current_actor(environ).name
