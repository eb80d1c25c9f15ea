"""One writer per study: an OS-level lock on ``<study>/study.lock``.

``run``, ``resume`` and an ask/tell driver take the lock before they write anything and hold it
for the life of the process (``fcntl.flock`` on an open file). The kernel releases it when the
process ends however it ends (exit, crash, SIGKILL), so a dead study never stays locked and no
stale-lock clean-up exists. A second writer fails at once with ``StudyLocked`` (exit code 2 in the
CLI), naming the process that holds the study: the holder writes its PID, host, command line and
start time into the lock file after taking the lock.

Readers (``status``, ``best``, reports) never take the lock: SQLite's WAL mode lets them read
while the writer writes, and they work on a read-only folder.

The lock is advisory and local: a study folder on a network file system shared by two machines
is protected only where the file system implements ``flock`` across hosts (NFSv4 does, some
others do not).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

LOCK_NAME = "study.lock"


class StudyLocked(RuntimeError):
    """Another process holds the study's lock; the message names it."""


def _describe(info: dict[str, Any]) -> str:
    if not info:
        return "another process (it has not written its details yet)"
    cmd = str(info.get("command", "?"))
    if len(cmd) > 200:
        cmd = cmd[:195] + " ..."
    return (f"process {info.get('pid', '?')} on host {info.get('host', '?')} "
            f"(`{cmd}`, since {info.get('started', '?')})")


def read_holder(folder: str | Path) -> dict[str, Any]:
    """What the current (or last) holder wrote into the lock file; {} when unreadable."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text()[:4096]
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


class StudyLock:
    """The lock of one study folder. ``acquire()`` or use as a context manager."""

    def __init__(self, folder: str | Path, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command if command is not None else " ".join(sys.argv)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StudyLock:
        """Take the lock without waiting; raise StudyLocked naming the holder if it is taken."""
        if self._fd is not None:
            return self
        try:
            # O_CLOEXEC (Python's default): worker processes never inherit the lock, so it
            # dies with this process even if a worker outlives it for a moment
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StudyLocked(
                f"cannot lock the study {self.folder}: {exc.strerror or exc} (a study is written "
                f"only where its folder is writable)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = _describe(read_holder(self.folder))
            raise StudyLocked(
                f"the study {self.folder} is in use by {holder}; only one process may write a "
                f"study. Wait for it to end (or stop it), then run `jfhpo resume {self.folder}`"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        data = json.dumps(info).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (the file stays; its content names the last holder)."""
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass
