"""`sandbox down` signals only the processes cloudorch started, and sandbox files never follow links.

A record in `servers.json` is data anyone with write access to the folder (or a cloned
repository) can edit: these tests point it at processes the test started itself and check
that `down` leaves them running and says why, and that a planted symlink at a log, the lock or
the record is never written through.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudorch.sandbox import Emulator, Sandbox, down
from cloudorch.sandbox.emulators import _start
from cloudorch.sandbox.processes import boot_time, free_port, moto_argv, process_start

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process identity needs /proc")


def cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLOUDORCH_SANDBOX_DIR": str(directory), "NO_COLOR": "1", "CI": "true"}
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def fake_moto() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real moto server started by the test with exactly the command line cloudorch builds."""
    port = free_port()
    proc = subprocess.Popen(moto_argv(sys.executable, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc, port
    finally:
        proc.kill()
        proc.wait()


def record(directory: Path, emulator: Emulator) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    box = Sandbox(directory)
    box.emulators.append(emulator)
    box.save()


def test_down_leaves_an_unrelated_process_named_by_an_edited_record_alive(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    directory = tmp_path / ".cloudorch" / "sandbox"
    # pid, start time and argv all match the running `sleep`: only the argv check can refuse it
    argv = ["sleep", "300"]
    emulator = Emulator("moto", "aws", sleeper.pid, 1, "http://127.0.0.1:1", argv, "x.log",
                        start_ticks=process_start(sleeper.pid), boot_time=boot_time())  # fmt: skip
    record(directory, emulator)
    result = cli(directory, "sandbox", "down", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sleeper.poll() is None
    doc = json.loads(result.stdout)
    assert doc["stopped"] == []
    [left] = doc["not_stopped"]
    assert left["name"] == "moto" and left["pid"] == sleeper.pid
    assert "not the one cloudorch builds for moto" in left["reason"]
    # the same in text, per emulator
    record(directory, emulator)
    text = cli(directory, "sandbox", "down")
    assert f"Not stopped: moto (pid {sleeper.pid})" in text.stdout, text.stdout + text.stderr
    assert sleeper.poll() is None


def test_a_record_claiming_an_emulator_command_for_another_process_is_refused(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    directory = tmp_path / "sbx"
    argv = moto_argv(sys.executable, 4567)  # what cloudorch would build, but the pid runs `sleep`
    record(directory, Emulator("moto", "aws", sleeper.pid, 4567, "http://127.0.0.1:4567", argv, "x.log",
                               start_ticks=process_start(sleeper.pid), boot_time=boot_time()))  # fmt: skip
    [result] = down(directory)
    assert not result.stopped and "another command line" in result.reason
    assert sleeper.poll() is None


@pytest.mark.parametrize("shift", [1, -1, None])
def test_a_pid_with_another_start_time_is_not_signalled(
    tmp_path: Path, fake_moto: tuple[subprocess.Popen[bytes], int], shift: int | None
) -> None:
    proc, port = fake_moto
    started = process_start(proc.pid)
    assert started is not None
    ticks = None if shift is None else started + shift
    directory = tmp_path / "sbx"
    argv = moto_argv(sys.executable, port)
    record(directory, Emulator("moto", "aws", proc.pid, port, f"http://127.0.0.1:{port}", argv,
                               "x.log", start_ticks=ticks, boot_time=boot_time()))  # fmt: skip
    result = cli(directory, "sandbox", "down", "--json")
    assert result.returncode == 0, result.stderr
    assert proc.poll() is None
    [left] = json.loads(result.stdout)["not_stopped"]
    assert ("another time" if shift is not None else "no start time") in left["reason"]


def test_the_recorded_process_itself_is_stopped(tmp_path: Path, fake_moto: tuple[subprocess.Popen[bytes], int]) -> None:
    # the control for the tests above: with every field matching, `down` does stop it
    proc, port = fake_moto
    directory = tmp_path / "sbx"
    argv = moto_argv(sys.executable, port)
    record(directory, Emulator("moto", "aws", proc.pid, port, f"http://127.0.0.1:{port}", argv,
                               "x.log", start_ticks=process_start(proc.pid), boot_time=boot_time()))  # fmt: skip
    result = cli(directory, "sandbox", "down", "--json")
    assert result.returncode == 0, result.stderr
    assert [s["pid"] for s in json.loads(result.stdout)["stopped"]] == [proc.pid]
    assert proc.wait(timeout=10) is not None


@pytest.mark.parametrize("pid", [0, -1, 1, "12"])
def test_a_record_with_a_pid_that_is_no_process_of_ours_kills_nothing(tmp_path: Path, pid: object) -> None:
    directory = tmp_path / "sbx"
    directory.mkdir()
    doc = {"emulators": [{"name": "moto", "cloud": "aws", "pid": pid, "port": 1, "url": "u", "argv": ["x"],
                          "log": "l", "start_ticks": 1, "boot_time": 1}]}  # fmt: skip
    (directory / "servers.json").write_text(json.dumps(doc))
    result = cli(directory, "sandbox", "down", "--json")
    # a string pid makes the record unreadable (exit 1, a hint); an int pid is refused one by one
    assert "Traceback" not in result.stderr
    if isinstance(pid, int):
        assert result.returncode == 0 and json.loads(result.stdout)["stopped"] == []
    else:
        assert result.returncode == 1 and "not a sandbox record" in result.stdout + result.stderr


def test_a_symlink_planted_at_a_log_is_replaced_not_written_through(tmp_path: Path) -> None:
    directory = tmp_path / "sbx"
    directory.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (directory / "moto.log").symlink_to(victim)
    port = free_port()
    emulator = _start(directory, "moto", "aws", moto_argv(sys.executable, port), port)
    try:
        assert victim.read_text() == "precious\n"
        log = directory / "moto.log"
        assert not log.is_symlink() and stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        record(directory, emulator)
        assert [r.stopped for r in down(directory)] == [True]


def test_a_symlink_planted_at_the_lock_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / ".cloudorch" / "sandbox"
    directory.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (directory / ".lock").symlink_to(victim)
    result = cli(directory, "sandbox", "down")
    assert result.returncode == 1
    assert ".lock" in result.stderr and "symlink" in result.stderr and "Traceback" not in result.stderr
    assert victim.read_text() == "precious\n"


def test_the_record_is_replaced_atomically_and_the_folder_is_private(tmp_path: Path) -> None:
    directory = tmp_path / ".cloudorch" / "sandbox"
    directory.mkdir(parents=True, mode=0o755)
    victim = tmp_path / "victim.json"
    victim.write_text("precious\n")
    (directory / "servers.json").symlink_to(victim)
    with pytest.raises(Exception, match="not a sandbox record"):
        Sandbox.load(directory)  # a link is not read through either
    Sandbox(directory).save()
    assert victim.read_text() == "precious\n"
    assert not (directory / "servers.json").is_symlink()
    assert stat.S_IMODE((directory / "servers.json").stat().st_mode) == 0o600
    cli(directory, "sandbox", "down")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_every_command_line_cloudorch_builds_is_recognised_and_a_changed_one_is_not() -> None:
    from cloudorch.sandbox.processes import arm_argv, azurite_argv, built_argv_problem, fake_gcs_argv, google_argv

    main_js = "/x/node_modules/azurite/dist/src/blob/main.js"
    built = {
        "moto": moto_argv("/usr/bin/python3", 5000),
        "fake-gcs-server": fake_gcs_argv("/v/fake-gcs-server-linux-amd64", 5000),
        "azurite": azurite_argv("/usr/bin/node", main_js, 5000),
        "arm": arm_argv("/usr/bin/python3.11", 5000, "/s/arm-tls/arm-ca.pem", "/s/arm-tls/arm-key.pem"),
        "google-apis": google_argv("/usr/bin/python3.11", 5000),
    }
    for name, argv in built.items():
        assert built_argv_problem(name, argv, 5000) is None, name
        assert built_argv_problem(name, argv, 5001) is not None, name  # another port than recorded
        assert built_argv_problem(name, [*argv, "--extra"], 5000) is not None, name
        assert built_argv_problem(name, ["/bin/sleep", *argv[1:]], 5000) is not None, name


def test_up_restarting_a_half_dead_sandbox_leaves_an_unrelated_process_alive(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    directory = tmp_path / ".cloudorch" / "sandbox"
    record(directory, Emulator("moto", "aws", sleeper.pid, 1, "http://127.0.0.1:1", ["sleep", "300"], "x.log",
                               start_ticks=process_start(sleeper.pid), boot_time=boot_time()))  # fmt: skip
    env = {**os.environ, "CLOUDORCH_SANDBOX_DIR": str(directory), "NO_COLOR": "1", "CI": "true",
           "PATH": str(tmp_path / "no-node")}  # fmt: skip
    up = subprocess.run([sys.executable, "-m", "cloudorch", "sandbox", "up"], env=env, capture_output=True,
                        text=True, timeout=180)  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"moto (pid {sleeper.pid}) not stopped" in up.stderr, up.stderr
        assert sleeper.poll() is None
    finally:
        stopped = cli(directory, "sandbox", "down", "--json")
        assert stopped.returncode == 0 and sleeper.poll() is None
