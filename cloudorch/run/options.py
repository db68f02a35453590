"""What a run is asked to do (`RunOptions`) and how its caller stops it (`Interrupt`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cloudorch.engine.scheduler import Interrupt as _EngineInterrupt

#: operations at once across all providers; providers have their own limits below this
DEFAULT_PARALLELISM = 256


class Interrupt(_EngineInterrupt):
    """Fired by the caller (the CLI fires it from its SIGINT/SIGTERM handler) to stop starting work.

    An operation enters `armed()` only while it runs cloud operations, so a caller can route
    signals to `fire()` there and leave Ctrl-C an ordinary abort while planning or asking.
    """

    @contextmanager
    def armed(self) -> Iterator[None]:
        yield


@dataclass
class RunOptions:
    """What every command that reads a plan file needs."""

    plan_file: Path
    vars: Mapping[str, str] = field(default_factory=dict)
    var_files: Sequence[Path] = ()
    state_dir: Path | None = None  # default: .cloudorch/ next to the plan file
    parallelism: int = DEFAULT_PARALLELISM
    refresh: bool = True
    targets: Sequence[str] = ()
    excludes: Sequence[str] = ()
    replace: Sequence[str] = ()
    destroy: bool = False
    lock_timeout: float = 0.0
    #: recorded in the lock and the journal: who holds the state and why (`cloudorch apply`)
    command: str = "cloudorch"
    env: Mapping[str, str] | None = None
    #: told about things worth knowing that are not errors (recovery, lock takeover)
    notify: Callable[[str], None] | None = None
    policy_paths: Sequence[Path] = ()
    #: policy id -> reason, from --override ID --reason TEXT
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: (format, file) pairs from --policy-report FORMAT=FILE
    policy_reports: Sequence[tuple[str, str]] = ()
    #: --backend URL (s3://, gs://, azblob://, file://); None: the plan's backend block, else local
    backend_url: str | None = None
    #: --stage: the release stage whose resources and state document this run works on
    stage: str | None = None
    #: --version on release commands: `${release.version}` (else the plan's `release.version`)
    release_version: str | None = None
    #: --sandbox: local emulators and a state namespace apart from real state
    sandbox: bool = False
    #: --on-failure: stop | continue | rollback
    on_failure: str = "stop"
    #: plan --generate-config-out FILE: import targets without a resource block are read for it
    generate_config_out: Path | None = None
    #: --notify URL (repeatable): ad-hoc notification targets besides the plan's `notifications:`
    notify_urls: Sequence[str] = ()

    def say(self, text: str) -> None:
        if self.notify is not None:
            self.notify(text)
