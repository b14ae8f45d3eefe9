"""One run per pipeline root: a lock file that a second `phone2dslr run` on the same root stops at.

Two LocalDagRunner runs on one pipeline root write the same MLMD sqlite database and the same
component folders at once; that corrupts both. `hold(pipeline_root)` takes an exclusive
`fcntl.flock` on `<pipeline_root>/run.lock` and writes the owner's pid, host and start time
into it, so the second run can say which run holds the root.

The kernel releases a flock when its process ends, however it ends (SIGKILL, a crash, a power cut
wipes the lock table), so a lock is never held by a dead process. What a dead run can leave
behind is its record: a lock file that is not locked but still names an owner. That record is
stale; taking the lock over is reported in one line. A record from another host is not taken over:
this host cannot tell whether that run still lives, and a file system whose locks do not reach
across hosts would let both runs in; the error says to delete the file once that run is over.

The lock file is never deleted, only emptied on release: deleting a locked file lets a third run
lock a new file of the same name while a second one waits on the old one.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator

LOCK_FILE = "run.lock"


class RunLockError(ValueError):
    """Another run holds the pipeline root (or may: a record from another host). One line."""


def _describe(owner: dict) -> str:
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, "
            f"started {owner.get('started', '?')}")


def _read_owner(fd: int) -> dict | None:
    """The record in the lock file; None if it is empty, {} if it is unreadable."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 probes without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def _stale_note(owner: dict, path: str) -> str:
    """The one line said when a dead run's record is taken over."""
    pid = owner.get("pid")
    why = ("no longer running" if isinstance(pid, int) and not pid_alive(pid)
           else "no longer holding it (that pid is now another process)")
    return f"note: taking over the stale run lock {path} of {_describe(owner)}: that run is {why}"


def acquire(pipeline_root: str, report: Callable[[str], None] | None = None) -> int:
    """Lock `<pipeline_root>/run.lock` for this process and record the owner; returns the fd.

    report: called with one line when a stale record (a run that ended without releasing the
    lock) is taken over; default: print it to stderr.
    Raises RunLockError (one line, naming the running owner) when another process holds the lock,
    or when an unlocked record names another host (its run may still be live there), or when
    the pipeline root cannot be created or the lock file cannot be opened (one line, the reason).
    """
    path = os.path.join(os.path.abspath(pipeline_root), LOCK_FILE)
    try:
        os.makedirs(pipeline_root, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:  # a user's path: a file where a folder should be, no permission, ...
        raise RunLockError(f"cannot use pipeline root {pipeline_root} (lock file {path}): "
                           f"{e.strerror or e}; choose another pipeline_root") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            who = _describe(owner) if owner else "a run that is still starting"
            raise RunLockError(f"pipeline root {pipeline_root} is in use by another `phone2dslr run` "
                               f"({who}; lock file {path}): wait for it to finish or use another "
                               "pipeline_root") from None
        owner = _read_owner(fd)
        if owner is not None:
            if owner.get("host") not in (None, socket.gethostname()):
                raise RunLockError(f"lock file {path} names a run of {_describe(owner)}, which this "
                                   "host cannot check: if that run is over, delete the file and run again")
            (report or (lambda line: print(line, file=sys.stderr, flush=True)))(_stale_note(owner, path))
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)  # closing the last descriptor releases the flock, if it was taken
        raise
    return fd


def release(fd: int) -> None:
    """Empty the record (the run ended cleanly, nothing stale is left) and unlock."""
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def hold(pipeline_root: str, report: Callable[[str], None] | None = None) -> Iterator[None]:
    """`with hold(root):` the block runs as the only run on `root`; errors as `acquire`."""
    fd = acquire(pipeline_root, report)
    try:
        yield
    finally:
        release(fd)
