"""Who is running cloudorch, for the audit trail of policy overrides and the `input.user` field.

Order: `CLOUDORCH_ACTOR`, then the user variables CI systems set, then the OS user. Reads the
environment only; never asks anyone anything.
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


def current_actor(environ: Mapping[str, str] | None = None) -> Actor:
    env = os.environ if environ is None else environ
    for var in ("CLOUDORCH_ACTOR", *CI_ACTOR_VARIABLES):
        value = env.get(var, "").strip()
        if value:
            return Actor(value, var)
    try:
        return Actor(getpass.getuser(), "os-user")
    except (KeyError, OSError):  # no passwd entry (containers) and no USER/LOGNAME
        return Actor("unknown", "os-user")
