"""One run per pipeline root: real processes hold, lose and take over `<pipeline_root>/run.lock`."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import pytest

from phone2dslr.pipeline import run_lock

REPO = pathlib.Path(__file__).resolve().parents[2]
# A run stand-in: takes the lock as `phone2dslr run` does, says so, and keeps it until killed.
HOLDER = ("import sys, time\n"
          "from phone2dslr.pipeline import run_lock\n"
          "with run_lock.hold(sys.argv[1]):\n"
          "    print('locked', flush=True)\n"
          "    time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """A real process holding the lock on tmp_path/root; killed (SIGKILL) at the end if still alive."""
    root = tmp_path / "root"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc, root
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


def _record(root: pathlib.Path) -> dict:
    return json.loads((root / run_lock.LOCK_FILE).read_text())


def test_a_second_run_stops_with_one_line_naming_the_running_one(holder):
    proc, root = holder
    assert _record(root)["pid"] == proc.pid and _record(root)["host"] == socket.gethostname()
    with pytest.raises(run_lock.RunLockError) as caught:
        run_lock.acquire(str(root))
    message = str(caught.value)
    assert "\n" not in message
    assert f"pid {proc.pid} on host {socket.gethostname()}" in message and _record(root)["started"] in message
    assert str(root / run_lock.LOCK_FILE) in message
    assert _record(root)["pid"] == proc.pid  # the holder's record is left as it was
    assert proc.poll() is None


def test_the_cli_prints_the_lock_error_as_one_line_and_exits_2(holder, tmp_path):
    proc, root = holder
    cli = subprocess.run(
        [sys.executable, "-c", "import sys; from phone2dslr.cli import main; sys.exit(main())", "run",
         "--config", "configs/demo.yaml", "--set", f"pipeline_root={root}",
         "--set", f"metadata_path={tmp_path / 'metadata.sqlite'}",
         "--set", f"data.demo_dir={tmp_path / 'demo'}", "--set", f"data.root={tmp_path / 'demo' / 'dped'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2, cli.stderr
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: pipeline root ") and f"pid {proc.pid} " in lines[0]
    assert not (tmp_path / "demo").exists() and not (tmp_path / "metadata.sqlite").exists()  # nothing written


def test_a_killed_runs_lock_is_taken_over_and_said_in_one_line(holder):
    proc, root = holder
    proc.send_signal(signal.SIGKILL)  # dies without releasing: its record stays behind
    proc.wait(timeout=30)
    assert _record(root)["pid"] == proc.pid
    notes: list[str] = []
    with run_lock.hold(str(root), report=notes.append):
        assert _record(root)["pid"] == os.getpid()
        with pytest.raises(run_lock.RunLockError, match=f"pid {os.getpid()} "):
            run_lock.acquire(str(root))  # and now this process holds it
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "taking over the stale run lock" in notes[0] and f"pid {proc.pid} " in notes[0]
    assert "no longer running" in notes[0]
    assert (root / run_lock.LOCK_FILE).read_text() == ""  # a clean release leaves nothing stale
    with run_lock.hold(str(root), report=notes.append):
        pass
    assert len(notes) == 1


def test_a_lock_file_left_by_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    assert not run_lock.pid_alive(dead.pid)
    root = tmp_path / "root"
    root.mkdir()
    record = {"pid": dead.pid, "host": socket.gethostname(), "started": "2024-01-01T00:00:00+00:00"}
    (root / run_lock.LOCK_FILE).write_text(json.dumps(record))
    notes: list[str] = []
    fd = run_lock.acquire(str(root), report=notes.append)
    try:
        assert _record(root)["pid"] == os.getpid()
        assert len(notes) == 1 and f"pid {dead.pid} " in notes[0] and "no longer running" in notes[0]
        assert "2024-01-01T00:00:00+00:00" in notes[0]
    finally:
        run_lock.release(fd)


def test_an_unlocked_record_from_another_host_is_not_taken_over(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    record = {"pid": 4242, "host": "some-other-host", "started": "2024-01-01T00:00:00+00:00"}
    (root / run_lock.LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(run_lock.RunLockError, match="pid 4242 on host some-other-host.*delete the file"):
        run_lock.acquire(str(root))
    assert _record(root) == record
    (root / run_lock.LOCK_FILE).unlink()  # what the message says to do
    run_lock.release(run_lock.acquire(str(root)))


@pytest.mark.parametrize("key", ["pipeline_root", "metadata_path", "serving_dir", "lock_is_a_folder"])
def test_unusable_run_folders_are_one_line_before_any_work(key, tmp_path):
    """A file where a folder must be (or a folder where the lock file goes): one line, exit 2."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    paths = {"pipeline_root": tmp_path / "root", "metadata_path": tmp_path / "m.sqlite",
             "serving_dir": tmp_path / "serving"}
    if key == "lock_is_a_folder":
        (tmp_path / "root" / run_lock.LOCK_FILE).mkdir(parents=True)
    else:
        paths[key] = blocker / "below" / ("m.sqlite" if key == "metadata_path" else "")
    cli = subprocess.run(
        [sys.executable, "-c", "import sys; from phone2dslr.cli import main; sys.exit(main())", "run",
         "--config", "configs/demo.yaml", *[a for k, v in paths.items() for a in ("--set", f"{k}={v}")],
         "--set", f"data.demo_dir={tmp_path / 'demo'}", "--set", f"data.root={tmp_path / 'demo' / 'dped'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert cli.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), cli.stderr[-2000:]
    assert "Traceback" not in cli.stderr and not (tmp_path / "demo").exists()  # stopped before the demo data
