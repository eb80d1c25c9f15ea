"""#15 finding 1: one writer per study. ``jfhpo run`` plus ``jfhpo resume`` on the same study, and
two resumes after a kill: the second process gets exit code 2 naming the holder, and the study's
invariants hold (no duplicated decision, observation or step; spent budget within the cap)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import cli, synthetic_study, write_study

from jfhpo.records import SegmentStatus
from jfhpo.storage import Storage

BUDGET = 100.0
WORKERS = 2
MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "200k", "params": 2e5, "cost": 1.6}]
#: the most one segment can cost (90 steps x 0.1 s x cost 1.6). The budget ledger starts nothing
#: it cannot pay for at its predicted cost; a segment killed and re-run, or one that costs more
#: than predicted, may still pass the cap, by at most one segment per worker. Two writers on one
#: study (no lock) spent about twice the budget.
MAX_SEGMENT = 90 * 0.1 * 1.6


def _study(tmp_path: Path) -> Path:
    data = synthetic_study(models=MODELS, workers=WORKERS, budget={"seconds": BUDGET},
                           confirm={"top_k": 0})
    data["backend"]["options"]["sleep"] = 0.02  # real seconds per step: a study of ~8 s
    return write_study(tmp_path / "c.yaml", data)


def _popen(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "jfhpo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_started(proc: subprocess.Popen[str], seconds: float = 1.5) -> None:
    """Until the process printed its study folder (it holds the lock by then), plus a while."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("study folder:"), line
    time.sleep(seconds)
    assert proc.poll() is None, "the study ended before the second process could start"


def check_invariants(folder: Path) -> dict[str, Any]:
    """The study's records are those of one writer: every decision made once, every step of a
    run trained once, every observation recorded once, the budget within its cap."""
    st = Storage(folder / "study.sqlite", readonly=True)
    try:
        runs = st.rows("runs")
        segs = st.rows("segments")
        obs = st.rows("observations")
        events = st.rows("events")
        suggestions = st.rows("suggestions")
    finally:
        st.close()
    assert sum(1 for e in events if e["kind"] == "created") == 1
    started = [r["suggestion_id"] for r in runs]
    assert len(started) == len(set(started)), "a start decision made two runs"
    assert len(started) == sum(1 for s in suggestions if s["kind"] == "start")
    live = [s for s in segs if s["status"] != int(SegmentStatus.INTERRUPTED)]
    per_suggestion = [s["suggestion_id"] for s in live]
    assert len(per_suggestion) == len(set(per_suggestion)), "a decision was executed twice"
    for r in runs:  # each run's live segments form one chain from step 0
        chain = sorted((s for s in live if s["run_id"] == r["id"]), key=lambda s: s["id"])
        at = 0
        for s in chain:
            assert s["start_step"] == at, (r["id"], [(c["start_step"], c["end_step"]) for c in chain])
            at = s["end_step"] if s["end_step"] is not None else s["target_step"]
    ends = {s["id"]: s["end_step"] for s in live}
    seen: dict[tuple[int, int], list[int]] = {}
    for o in obs:
        if o["segment_id"] in ends:
            seen.setdefault((o["run_id"], o["step"]), []).append(o["segment_id"])
    for (run, step), segments in seen.items():
        # one segment per step; a segment stopped early adds its final evaluation at its end step
        assert len(set(segments)) == 1, f"run {run} step {step} recorded by segments {segments}"
        assert len(segments) == 1 or (len(segments) == 2 and ends[segments[0]] == step), (
            f"run {run} step {step} recorded {len(segments)} times")
    spent = sum(s["cost"] or 0.0 for s in segs if s["status"] in (
        int(SegmentStatus.COMPLETED), int(SegmentStatus.STOPPED), int(SegmentStatus.FAILED)))
    assert spent <= BUDGET + WORKERS * MAX_SEGMENT + 1e-9, spent
    return {"runs": len(runs), "segments": len(segs), "spent": spent}


def test_resume_while_run_is_running_is_refused(tmp_path: Path) -> None:
    f = _study(tmp_path)
    folder = tmp_path / "S"
    first = _popen("run", str(f), "--out", str(folder), "--quiet")
    try:
        _wait_started(first)
        second = cli("resume", str(folder), "--quiet", timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"process {first.pid}" in second.stderr and "in use" in second.stderr, second.stderr
        assert "run" in second.stderr  # the holder's command line
        reader = cli("status", str(folder), "--json", timeout=60)  # readers need no lock
        assert reader.returncode == 0, reader.stderr
        assert json.loads(reader.stdout)["budget"]["total"] == BUDGET
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    check_invariants(folder)


def test_two_resumes_after_a_kill(tmp_path: Path) -> None:
    f = _study(tmp_path)
    folder = tmp_path / "S"
    victim = _popen("run", str(f), "--out", str(folder), "--quiet")
    _wait_started(victim, seconds=2.0)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    resume_a = _popen("resume", str(folder), "--quiet")
    try:
        _wait_started(resume_a, seconds=0.5)
        resume_b = cli("resume", str(folder), "--quiet", timeout=60)
        assert resume_b.returncode == 2, resume_b.stderr
        assert f"process {resume_a.pid}" in resume_b.stderr, resume_b.stderr
        assert "Traceback" not in resume_b.stderr
    finally:
        _, err = resume_a.communicate(timeout=120)
    assert resume_a.returncode == 0, err
    stats = check_invariants(folder)
    assert stats["spent"] > 0.5 * BUDGET  # the resumed study ran on (and "nothing left" below)
    again = cli("resume", str(folder), "--quiet", timeout=60)  # the lock died with its holder
    assert again.returncode == 0, again.stderr
    assert check_invariants(folder)["segments"] == stats["segments"]  # nothing left to do
