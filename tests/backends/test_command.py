"""The command backend with real trainer processes: the shipped PyTorch example (resume is
bit-exact, STOP ends the process group, the checkpoint kept is a saved step) and misbehaving
trainers (crash, hang, SIGTERM ignored). Every test checks that the process group is gone."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from jfhpo.backends.base import BackendError, SegmentTask
from jfhpo.backends.command import CommandBackend, MetricsTail, param_arguments, saved_steps
from jfhpo.backends.command_proc import group_alive
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict

EXAMPLE = ["{python}", "-m", "jfhpo.examples.train_regression", "--total-steps", "{max_steps}",
           "--end-step", "{end_step}", "--save-dir", "{checkpoint_dir}", "--save-every", "4",
           "--metrics", "{metrics_file}", "--seed", "{seed}", "--width", "{build[width]}"]


def example_backend(**extra: Any) -> CommandBackend:
    return CommandBackend({"command": EXAMPLE, "resume_args": ["--resume", "{resume_path}"],
                           "params": "flags", "metric_map": {}, "checkpoint_every": 4,
                           "timeout": 60, "grace": 2, **extra})


def task(tmp: Path, seg: int, start: int, target: int, resume: str | None = None,
         max_steps: int = 12, config: Mapping[str, Any] | None = None) -> SegmentTask:
    ck = tmp / "checkpoints" / "staging" / f"segment-{seg}"
    ck.mkdir(parents=True, exist_ok=True)
    return SegmentTask(run_id=1, segment_id=seg,
                       config=dict(config or {"learning_rate": 0.05, "momentum": 0.5}),
                       model=ModelRung("w8", 105, 1.0, {"width": 8}), start_step=start,
                       target_step=target, max_steps=max_steps, seed=3,
                       checkpoint_dir=str(ck), resume_from=resume)


class Recorder:
    def __init__(self, stop_at: int | None = None) -> None:
        self.steps: list[int] = []
        self.metrics: dict[int, dict[str, float]] = {}
        self.stop_at = stop_at

    def __call__(self, step: int, metrics: Mapping[str, float]) -> Verdict:
        self.steps.append(step)
        self.metrics[step] = dict(metrics)
        return Verdict.STOP if self.stop_at is not None and step >= self.stop_at else \
            Verdict.CONTINUE


def pgid_of(tmp: Path, seg: int) -> int:
    return int((tmp / "logs" / f"segment-{seg}" / "pgid").read_text())


def assert_group_gone(pgid: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(pgid), f"process group {pgid} is still alive"


def test_resume_is_bit_exact_and_steps_are_reported(tmp_path: Path) -> None:
    b = example_backend()
    whole = Recorder()
    out = b.run_segment(task(tmp_path, 1, 0, 8), whole)
    assert whole.steps == list(range(1, 9)) and out.end_step == 8 and out.checkpoint
    assert {"loss", "grad_norm", "lr", "eval_loss"} <= set(whole.metrics[8])
    assert (tmp_path / "logs" / "segment-1" / "stdout.log").exists()
    assert_group_gone(pgid_of(tmp_path, 1))

    first = Recorder()
    b.run_segment(task(tmp_path, 2, 0, 4), first)
    ck = tmp_path / "checkpoints" / "staging" / "segment-2"
    assert saved_steps(str(ck), "global_step_{step}") == [4]
    second = Recorder()
    out2 = b.run_segment(task(tmp_path, 3, 4, 8, resume=str(ck)), second)
    assert second.steps == [5, 6, 7, 8] and out2.end_step == 8
    argv = json.loads((tmp_path / "logs" / "segment-3" / "command.json").read_text())["argv"]
    assert argv[-2:] == ["--resume", str(ck / "global_step_4")]
    for s in range(5, 9):  # same process-independent stream, same schedule: identical numbers
        assert second.metrics[s]["eval_loss"] == whole.metrics[s]["eval_loss"]


def test_stop_verdict_ends_the_group_and_keeps_the_last_saved_step(tmp_path: Path) -> None:
    b = example_backend()
    rec = Recorder(stop_at=6)
    out = b.run_segment(task(tmp_path, 1, 0, 12), rec)
    assert rec.steps[-1] == 6 and out.end_step == 6
    ck = tmp_path / "checkpoints" / "staging" / "segment-1"
    kept = saved_steps(str(ck), "global_step_{step}")
    assert kept == [4]  # step 8 (if saved before the stop arrived) is removed: not <= 6
    assert getattr(out, "checkpoint_step", 4) == 4
    assert_group_gone(pgid_of(tmp_path, 1))


def script(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text(textwrap.dedent(body))
    return str(path)


LOGGER = """
import json, os, signal, subprocess, sys, time
def log(step, **kw):
    with open(os.environ["METRICS"], "a") as f:
        f.write(json.dumps({"step": step, **kw}) + "\\n")
"""


def misbehaving(tmp: Path, body: str, **opts: Any) -> CommandBackend:
    path = script(tmp, "trainer.py", LOGGER + textwrap.dedent(body))
    return CommandBackend({"command": [sys.executable, path], "params": "env",
                           "env": {"METRICS": "{metrics_file}"}, "metrics_format": "flat",
                           "grace": 1, **opts})


def test_a_crashing_trainer_fails_the_segment_with_its_log_tail(tmp_path: Path) -> None:
    b = misbehaving(tmp_path, """
        assert os.environ["LEARNING_RATE"] == "0.05"   # params: env
        for s in (1, 2, 3):
            log(s, loss=1.0 / s)
        print("CUDA out of memory (pretend)", file=sys.stderr)
        sys.exit(3)
    """)
    rec = Recorder()
    with pytest.raises(RuntimeError) as err:
        b.run_segment(task(tmp_path, 1, 0, 10), rec)
    assert "exited with code 3 at step 3" in str(err.value)
    assert "CUDA out of memory (pretend)" in str(err.value)
    assert rec.steps == [1, 2, 3]
    assert_group_gone(pgid_of(tmp_path, 1))


def test_a_hanging_trainer_and_its_child_are_ended_by_the_timeout(tmp_path: Path) -> None:
    b = misbehaving(tmp_path, """
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        log(1, loss=1.0)
        time.sleep(600)
    """, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="timed out after 2 s"):
        b.run_segment(task(tmp_path, 1, 0, 10), Recorder())
    assert time.monotonic() - t0 < 15
    assert_group_gone(pgid_of(tmp_path, 1))


def test_a_trainer_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    b = misbehaving(tmp_path, """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        s = 0
        while True:
            s += 1
            log(s, loss=1.0)
            time.sleep(0.05)
    """)
    rec = Recorder(stop_at=3)
    t0 = time.monotonic()
    out = b.run_segment(task(tmp_path, 1, 0, 1000, max_steps=1000), rec)
    assert out.end_step == 3 and not out.checkpoint
    assert time.monotonic() - t0 >= 1.0  # SIGTERM was ignored: SIGKILL came after the grace
    assert_group_gone(pgid_of(tmp_path, 1))


def test_options_are_checked_and_named(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"backend\.options\.command"):
        CommandBackend({"command": "python train.py"})
    with pytest.raises(BackendError, match="unknown key"):
        CommandBackend({"command": ["x"], "comand": 1})
    with pytest.raises(BackendError, match="checkpoint_pattern"):
        CommandBackend({"command": ["x"], "checkpoint_pattern": "ckpt"})
    b = CommandBackend({"command": ["x", "{build[size]}", "{nope}"]})
    from jfhpo.fidelity import ModelLadder
    from jfhpo.space import FloatParam, SearchSpace

    with pytest.raises(BackendError, match="nope"):
        b.validate(SearchSpace([FloatParam("lr", 0.1, 1.0)]),
                   ModelLadder([ModelRung("a", 1, 1.0, {"size": 1})]))


def test_param_styles_and_metric_lines(tmp_path: Path) -> None:
    cfg = {"lr": 1e-06, "use_kl": True, "n": 5}
    names = {"lr": "actor.optim.lr"}
    assert param_arguments(cfg, "hydra", names)[0] == [
        "actor.optim.lr=1e-06", "n=5", "use_kl=true"]
    assert param_arguments(cfg, "flags", {})[0] == [
        "--lr", "1e-06", "--n", "5", "--use_kl", "true"]
    assert param_arguments(cfg, "env", {})[1] == {"LR": "1e-06", "USE_KL": "true", "N": "5"}
    f = tmp_path / "m.jsonl"
    f.write_bytes(b'{"step": 1, "data": {"critic/score/mean": 0.5}}\n{"step": 2, "da')
    tail = MetricsTail(str(f), "verl")
    assert tail.read() == [(1, {"critic/score/mean": 0.5})]
    with open(f, "ab") as h:
        h.write(b'ta": {"x": 1}}\n')
    assert tail.read() == [(2, {"x": 1})]
    assert os.path.getsize(f) == tail.offset
