"""The study lock: one writer, the holder named, released by the kernel when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jfhpo.lock import LOCK_NAME, StudyLock, StudyLocked, read_holder


def test_second_lock_is_refused_and_names_the_holder(tmp_path: Path) -> None:
    first = StudyLock(tmp_path, command="jfhpo run w.yaml").acquire()
    with pytest.raises(StudyLocked, match=rf"process {os.getpid()} on host .*jfhpo run w.yaml"):
        StudyLock(tmp_path, command="jfhpo resume").acquire()
    assert read_holder(tmp_path)["pid"] == os.getpid()
    first.release()
    with StudyLock(tmp_path) as again:
        assert again.held
    assert not again.held


def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    code = ("import sys, time; from jfhpo.lock import StudyLock; "
            "lock = StudyLock(sys.argv[1], command='holder').acquire(); print('held', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(StudyLocked, match=f"process {proc.pid} .*holder"):
            StudyLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while True:  # the kernel drops the lock with the process
        try:
            StudyLock(tmp_path).acquire().release()
            break
        except StudyLocked:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert (tmp_path / LOCK_NAME).exists()


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StudyLocked, match="cannot lock the study"):
        StudyLock(tmp_path / "missing" / "deeper").acquire()
