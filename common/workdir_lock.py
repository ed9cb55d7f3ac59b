"""One writer per folder: a lock file holding the writer's pid and host.

Every trainer takes `WORKDIR/.lock` when its run starts (`common.train.trainer.start_run`; only
the chief under multi-worker, `common.train.distribute.is_chief`) and `python -m data.build` takes
`OUTPUT_DIR/.<name>.lock` for the records of one `--name`, so a double launch on one folder is
refused in one line instead of two processes overwriting each other's checkpoints, events or
shards::

    WorkdirLocked: /runs/umsn is in use by pid 4242 on host gpu-3 (python -m paper3_umsn.train
    ..., since 2026-12-05T21:40:00): wait for it to finish or stop it (kill 4242), or use
    another folder.

The lock is an `fcntl.flock` on the lock file, which the kernel drops when its process dies,
plus a JSON record `{"pid", "host", "command", "since"}` for the message. A lock file left by a
dead process on this host is taken over (logged); a lock file written by another host whose
`flock` this host cannot see (some network file systems) is refused naming that host, since its
pid cannot be checked from here. The file is removed when the lock is released (at the end of
`train`, of a build, or at exit). A process holding a folder's lock may take it again (a
no-op), so one process can run several stages in turn.
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
import sys
import time

from absl import logging

LOCK_NAME = ".lock"
_HELD: dict[str, "_Lock"] = {}  # realpath of the lock file -> the lock this process holds


class LockError(RuntimeError):
    """The folder's lock cannot be taken (the message says why and what to do)."""


class WorkdirLocked(LockError):
    """Another live process holds the folder's lock."""


def free_space(directory: str) -> str:
    """'N MiB free there' for the file system of `directory` (for disk-full messages)."""
    import shutil  # pylint: disable=import-outside-toplevel
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return "free space unknown"
    if free < 10 * 2 ** 20:
        return f"{free / 2 ** 10:,.0f} KiB free there"
    return f"{free / 2 ** 20:,.0f} MiB free there"


class _Lock:
    def __init__(self, path: str, fd: int, record: dict):
        self.path, self.fd, self.record = path, fd, record


def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _read_record(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)
        record = json.loads(data.decode("utf-8")) if data.strip() else {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder(record: dict) -> str:
    if not record:
        return "another process (still starting: its lock file is empty)"
    extra = ", ".join(str(record[k]) for k in ("command", "since") if record.get(k))
    return (f"pid {record.get('pid', '?')} on host {record.get('host', '?')}"
            + (f" ({extra})" if extra else ""))


def describe(directory: str, name: str = LOCK_NAME) -> str | None:
    """Who holds `directory`'s lock ("pid N on host H (...)"), or None when nobody does."""
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return _holder(_read_record(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def acquire(directory: str, name: str = LOCK_NAME, what: str = "--workdir") -> str:
    """Takes `directory/name` for this process (creating `directory`); returns the lock's path.

    Raises `WorkdirLocked` naming the holder's pid, host and command when a live process holds
    it, or when the file names another host (its pid cannot be checked from here). A lock left
    by a dead process of this host is taken over with a warning. Taking a lock this process
    already holds is a no-op.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    key = os.path.realpath(path)
    if key in _HELD:
        return path
    for _ in range(10):  # a holder that releases between our open and flock: try again
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            record = _read_record(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise WorkdirLocked(
                f"{what}={directory} is in use by {_holder(record)}: wait for it to finish or "
                f"stop it (kill {record.get('pid', 'PID')}), or use another folder. "
                f"(Lock file: {path}.)") from None
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if not same_file:  # released and removed while we waited for it: take the new file
            os.close(fd)
            continue
        old = _read_record(fd)
        if old and old.get("host") not in (None, _host()):
            os.close(fd)
            raise WorkdirLocked(
                f"{what}={directory} is locked by {_holder(old)}, another host whose process "
                f"cannot be checked from here: if that run has ended, remove {path}; otherwise "
                f"wait for it or use another folder.")
        if old and old.get("pid") not in (None, os.getpid()):
            alive = _pid_alive(int(old["pid"]))
            logging.warning("%s: taking over the stale lock of %s (%s).", path, _holder(old),
                            "its pid is now another process's" if alive else "not running")
        record = {"pid": os.getpid(), "host": _host(),
                  "command": " ".join(os.path.basename(a) if i == 0 else a
                                      for i, a in enumerate(sys.argv))[:300],
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
            os.fsync(fd)
        except OSError as e:  # a full disk, a quota: one line, not a traceback
            os.close(fd)
            raise LockError(f"cannot write the lock file {path} ({e.strerror}; "
                            f"{free_space(directory)}): free some space or use another "
                            f"folder.") from None
        _HELD[key] = _Lock(path, fd, record)
        return path
    raise WorkdirLocked(f"{what}={directory}: the lock file {path} keeps being replaced; is "
                        f"another process starting there?")


def release(directory: str, name: str = LOCK_NAME) -> None:
    """Drops this process's lock of `directory` (removing the file); a no-op when not held."""
    lock = _HELD.pop(os.path.realpath(os.path.join(directory, name)), None)
    if lock is None:
        return
    try:
        if os.path.samestat(os.fstat(lock.fd), os.stat(lock.path)):
            os.remove(lock.path)  # still locked: nobody else can have taken this file
    except OSError:
        pass
    finally:
        os.close(lock.fd)


def held() -> list[str]:
    """The lock files this process holds."""
    return [lock.path for lock in _HELD.values()]


class hold:  # pylint: disable=invalid-name
    """`with hold(directory, name, what):` acquire on entry, release on exit (if this block took
    it; a lock the process already held stays held)."""

    def __init__(self, directory: str, name: str = LOCK_NAME, what: str = "--workdir"):
        self.directory, self.name, self.what = directory, name, what
        self._took = False

    def __enter__(self) -> str:
        key = os.path.realpath(os.path.join(self.directory, self.name))
        self._took = key not in _HELD
        return acquire(self.directory, self.name, self.what)

    def __exit__(self, *exc) -> bool:
        if self._took:
            release(self.directory, self.name)
        return False


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD.values()):
        release(os.path.dirname(lock.path), os.path.basename(lock.path))
