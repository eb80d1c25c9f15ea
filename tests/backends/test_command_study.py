"""Command-backend studies through the real CLI: jfhpo is SIGKILLed in the middle of a segment,
the trainer's process group goes down with it, and ``jfhpo resume`` finishes the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from tests.conftest import cli

from jfhpo.backends.command_proc import group_alive
from jfhpo.records import SegmentStatus
from jfhpo.study import Study

#: a trainer without torch (fast to start): a noisy quadratic in the learning rate, one JSON
#: line per step after saving, checkpoints as global_step_N/state.json, resumes from one
TRAINER = '''
import argparse, json, math, os, random, time
p = argparse.ArgumentParser()
p.add_argument("--end", type=int); p.add_argument("--save-dir"); p.add_argument("--metrics")
p.add_argument("--resume", default=""); p.add_argument("--seed", type=int)
p.add_argument("--width", type=float); p.add_argument("--learning_rate", type=float)
p.add_argument("--sleep", type=float, default=0.1)
a = p.parse_args()
step, w = 0, 0.0
if a.resume:
    state = json.load(open(os.path.join(a.resume, "state.json")))
    step, w = state["step"], state["w"]
target = 1.0 / a.width
while step < a.end:
    time.sleep(a.sleep)
    rng = random.Random(a.seed * 7919 + step)
    w += a.learning_rate * (target - w) + 0.001 * rng.gauss(0, 1)
    step += 1
    if step % 5 == 0 or step == a.end:
        d = os.path.join(a.save_dir, f"global_step_{step}")
        os.makedirs(d, exist_ok=True)
        json.dump({"step": step, "w": w}, open(os.path.join(d, "state.json"), "w"))
    with open(a.metrics, "a") as f:
        f.write(json.dumps({"step": step, "loss": (w - target) ** 2,
                            "eval_loss": (w - target) ** 2 + 0.01}) + "\\n")
'''


def study_file(tmp: Path, sleep: float) -> Path:
    trainer = tmp / "trainer.py"
    trainer.write_text(TRAINER)
    study = {
        "name": "cmd", "seed": 1,
        "backend": {"name": "command", "options": {
            "command": [sys.executable, str(trainer), "--end", "{end_step}",
                        "--save-dir", "{checkpoint_dir}", "--metrics", "{metrics_file}",
                        "--seed", "{seed}", "--width", "{build[width]}", "--sleep", str(sleep)],
            "resume_args": ["--resume", "{resume_path}"], "params": "flags",
            "metrics_format": "flat", "checkpoint_every": 5, "timeout": 60, "grace": 2}},
        "objective": {"metric": "eval_loss", "mode": "min"},
        "models": [{"name": "small", "params": 10, "build": {"width": 1}},
                   {"name": "big", "params": 100, "cost": 1.5, "build": {"width": 2}}],
        "steps": {"min": 5, "max": 15, "eta": 3},
        "space": {"learning_rate": {"type": "float", "low": 0.01, "high": 0.9, "log": True}},
        "optimizer": {"name": "hyperband", "options": {"model": "small"}},
        "budget": {"seconds": 12},
        "workers": 1,
        "confirm": {"top_k": 1, "fraction": 0.2},
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def groups(folder: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted((folder / "logs").glob("segment-*/pgid"))]


def test_sigkill_of_jfhpo_takes_the_trainer_down_and_resume_finishes(tmp_path: Path) -> None:
    f = study_file(tmp_path, sleep=0.12)
    out = tmp_path / "st"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "jfhpo", "run", str(f), "--out", str(out),
                             "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    metrics: list[Path] = []
    while time.monotonic() < deadline:
        metrics = [m for m in (out / "logs").glob("segment-*/metrics.jsonl")
                   if m.read_text().count("\n") >= 2]
        if metrics:
            break
        time.sleep(0.05)
    assert metrics, "no segment started logging within 60 s"
    pgid = int((metrics[0].parent / "pgid").read_text())
    assert group_alive(pgid)
    os.kill(proc.pid, signal.SIGKILL)  # jfhpo only: the trainer runs in its own session
    proc.wait()
    t0 = time.monotonic()
    while group_alive(pgid) and time.monotonic() - t0 < 15:
        time.sleep(0.05)
    assert not group_alive(pgid), "the trainer outlived jfhpo"

    r = cli("resume", str(out), "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    st = Study.open(out)
    statuses = [s.status for s in st.segments.values()]
    assert SegmentStatus.INTERRUPTED in statuses
    assert any(s.start_step > 0 and s.status is SegmentStatus.COMPLETED
               for s in st.segments.values()), "no run was extended from a checkpoint"
    st.close()
    best = json.loads(cli("best", str(out), "--json").stdout)
    assert best["model"] == "big" and best["steps"] == 15
    for g in groups(out):
        assert not group_alive(g), f"process group {g} left behind"
