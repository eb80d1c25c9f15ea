"""#15 finding 10: Ctrl-C (SIGINT to the whole process group, workers included) and SIGTERM end a
study with one line saying how to resume, exit codes 130 and 143, and no worker tracebacks; the
study then resumes to its end with its invariants intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import cli
from tests.test_reliability_concurrency import _study, check_invariants


def _terminal_signals() -> None:
    """In the child before it runs: Ctrl-C as a terminal's foreground job has it. A shell's
    background job (``cmd &`` without job control, as CI scripts may start the tests) ignores
    SIGINT, and an ignored SIGINT is inherited: Python then installs no handler, and the
    study would run to its end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a session of its own: its process group stands for a terminal's foreground job
    proc = subprocess.Popen([sys.executable, "-m", "jfhpo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                            preexec_fn=_terminal_signals)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("study folder:")
    time.sleep(2.0)  # workers started and segments running
    assert proc.poll() is None
    return proc


@pytest.mark.parametrize(("how", "code", "word"), [
    ("ctrl-c", 130, "interrupted"), ("sigterm", 143, "terminated (SIGTERM)")])
def test_interrupt_prints_one_line_and_resumes(tmp_path: Path, how: str, code: int,
                                               word: str) -> None:
    f = _study(tmp_path)
    folder = tmp_path / "S"
    proc = _start("run", str(f), "--out", str(folder), "--quiet")
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: main process and workers
    else:
        proc.send_signal(signal.SIGTERM)  # what a scheduler does: the main process only
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"{word}; everything recorded is kept. Continue with: jfhpo resume {folder}"], err
    time.sleep(0.5)
    # no worker is left running (zombies wait for this container's init to reap them)
    ps = subprocess.run(["ps", "-eo", "sid=,stat=,pid=,args="], capture_output=True, text=True)
    left = [ln for ln in ps.stdout.splitlines()
            if ln.split()[0] == str(proc.pid) and not ln.split()[1].startswith("Z")]
    assert left == [], left
    r = cli("resume", str(folder), "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    check_invariants(folder)
