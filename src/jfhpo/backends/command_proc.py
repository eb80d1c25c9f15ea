"""Run a trainer command in its own process group and always reap the whole group.

A trainer (a PyTorch script, ``torchrun``, VeRL with its Ray processes) may start children of its
own, and jfhpo itself may die at any instant (SIGKILL, out of memory, a closed laptop lid). So the
command never runs as a direct child of the jfhpo worker. It runs under a small guard process:

    jfhpo worker --Popen(start_new_session)--> guard (session + group leader, child subreaper)
                                                  `--> trainer command (same group) --> its children

* The guard is the leader of a new session, so the whole trainer tree is one process group that
  ``os.killpg`` reaches, and a terminal's Ctrl-C does not hit it behind the worker's back.
* The guard polls its parent pid. When the worker disappears (jfhpo killed), the guard sends
  SIGTERM to the group, waits a grace period, then SIGKILL: no orphaned trainer keeps a GPU.
* On Linux the guard makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so
  grandchildren that lose their parent are re-parented to the guard and reaped by it rather than
  left as zombies of a container's init that may never reap them.
* The guard exits with the trainer's exit code (128 + signal number when a signal ended it).

``stop_group`` is the worker side: SIGTERM to the group, SIGKILL after the grace period, then wait
for the guard. ``group_alive`` tells whether any process of a group still exists (tests use it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO

#: prctl option number of PR_SET_CHILD_SUBREAPER (linux/prctl.h)
_PR_SET_CHILD_SUBREAPER = 36
_POLL = 0.2


def launch(argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str], stdout: IO[bytes],
           stderr: IO[bytes], grace: float, status_file: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` under the guard in a new session; the returned Popen is the guard, whose
    pid is also the process group id of the whole trainer tree. The guard writes the trainer's
    own exit code into ``status_file`` (read it with ``read_status``)."""
    guard = [sys.executable, "-m", "jfhpo.backends.command_proc", str(os.getpid()), str(grace),
             status_file, "--", *argv]
    return subprocess.Popen(guard, cwd=cwd, env=dict(env), stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def read_status(status_file: str) -> int | None:
    """The trainer's exit code written by the guard, or None when it did not exit by itself."""
    try:
        with open(status_file) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def group_alive(pgid: int) -> bool:
    """Whether any process (zombies included) of process group ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> int:
    """End the trainer tree of ``proc`` (a guard from ``launch``): SIGTERM to the group, SIGKILL
    after ``grace`` seconds, then reap the guard. Returns the guard's exit code."""
    pgid = proc.pid
    if proc.poll() is None or group_alive(pgid):
        signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_alive(pgid):
                break
            time.sleep(0.05)
        signal_group(pgid, signal.SIGKILL)
    try:
        rc = proc.wait(timeout=max(5.0, grace))
    except subprocess.TimeoutExpired:  # cannot happen after SIGKILL unless the kernel is stuck
        proc.kill()
        rc = proc.wait()
    return rc


def _reap_children() -> None:
    """Collect every exited child (grandchildren re-parented to this subreaper included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _make_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _end_group(grace: float) -> None:
    """SIGTERM the rest of this group, reap, SIGKILL what is left (this guard included)."""
    me = os.getpgrp()
    try:
        os.killpg(me, signal.SIGTERM)  # the guard ignores SIGTERM itself
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left: the group is only this guard
        if pid == 0:
            time.sleep(0.05)
    os.killpg(me, signal.SIGKILL)


def guard_main(argv: Sequence[str]) -> int:
    """``python -m jfhpo.backends.command_proc PARENT_PID GRACE STATUS_FILE -- COMMAND...``"""
    if len(argv) < 5 or argv[3] != "--":
        print("usage: command_proc PARENT_PID GRACE STATUS_FILE -- COMMAND...", file=sys.stderr)
        return 2
    parent, grace, status, cmd = int(argv[0]), float(argv[1]), argv[2], list(argv[4:])
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM is for the trainer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _make_subreaper()
    try:
        child = subprocess.Popen(cmd, preexec_fn=_default_signals)
    except OSError as exc:
        print(f"jfhpo: cannot start {cmd[0]!r}: {exc}", file=sys.stderr, flush=True)
        return 127
    while True:
        try:
            rc = child.wait(timeout=_POLL)
            break
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:  # the jfhpo worker is gone: take the trainer down with it
            print("jfhpo: the worker process died; stopping the trainer", file=sys.stderr,
                  flush=True)
            _end_group(grace)
            return 137
    code = rc if rc >= 0 else 128 - rc
    with open(status, "w") as f:
        f.write(f"{code}\n")
    _end_group(min(grace, 2.0))  # children the trainer left behind
    _reap_children()
    return code


def _default_signals() -> None:
    """In the trainer (after fork): SIGTERM and SIGINT back to their default actions."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(guard_main(sys.argv[1:]))
