"""A user's own backend, in a file outside the package, named ``module:Class`` in the study file,
runs a study end to end with 2 spawned workers; entry points of ``jfhpo.backends`` resolve too."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.conftest import cli, write_study

from jfhpo.backends.base import BackendError, get_backend
from jfhpo.study import Study

USER_BACKEND = '''
"""A user's trainer: a noisy quadratic in log10(lr), saving every 2 steps."""
import json, math, os
from jfhpo.backends.base import Backend, Capabilities, SegmentOutcome
from jfhpo.records import Verdict


class Quad(Backend):
    default_objective = "eval_score"

    def recipe(self):
        return {"lr": 1e-3, "warmup": int(self.options.get("warmup", 3))}

    def capabilities(self):
        return Capabilities(checkpoint_every=2)

    def run_segment(self, task, report):
        x = 0.0
        if task.resume_from:
            with open(os.path.join(task.resume_from, "x.json")) as f:
                state = json.load(f)
            assert state["step"] == task.start_step
            x = state["x"]
        lr = float(task.config["lr"])
        step = task.start_step
        for step in range(task.start_step + 1, task.target_step + 1):
            x += 1.0 / (1.0 + (math.log10(lr) + 3.0) ** 2)
            m = {"reward": x, "worker_pid": float(os.getpid())}
            if step == task.target_step:
                m["eval_score"] = x / task.max_steps
            if report(step, m) is Verdict.STOP:
                break
        with open(os.path.join(task.checkpoint_dir, "x.json"), "w") as f:
            json.dump({"step": step, "x": x}, f)
        return SegmentOutcome(end_step=step, cost=0.5 * (step - task.start_step))
'''


def test_module_class_backend_beside_the_study_file_runs_with_2_workers(tmp_path: Path) -> None:
    home = tmp_path / "project"
    home.mkdir()
    (home / "my_trainer.py").write_text(USER_BACKEND)
    study = {
        "name": "user", "seed": 1, "backend": {"name": "my_trainer:Quad",
                                               "options": {"warmup": 5}},
        "models": [{"name": "small", "params": 1e6}, {"name": "big", "params": 1e8, "cost": 4}],
        "steps": {"min": 2, "max": 8, "eta": 2}, "fixed": {"batch": 16},
        "space": {"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}},
        "optimizer": {"name": "hyperband"}, "stopping": False, "budget": {"seconds": 60},
        "workers": 2, "confirm": {"top_k": 1},
    }
    f = write_study(home / "study.yaml", study)
    out = tmp_path / "st"
    r = cli("run", str(f), "--out", str(out), "--quiet", cwd=tmp_path)  # not importable from cwd
    assert r.returncode == 0, r.stderr
    st = Study.open(out)
    pids = {ob.metrics["worker_pid"] for obs in st.obs.values() for ob in obs}
    assert len(pids) == 2  # both spawned workers loaded the user's class
    assert any(s.start_step > 0 for s in st.segments.values())  # extended from its checkpoints
    assert all(s.target_step % 2 == 0 for s in st.segments.values())  # saves every 2 steps
    best = st.best()
    assert best is not None and best["model"] == "big"
    # the effective configuration: the recipe (options-dependent), then fixed, then searched
    assert best["effective_config"] == {"lr": best["config"]["lr"], "warmup": 5, "batch": 16}
    st.close()
    r = cli("resume", str(out), "--quiet", cwd=tmp_path)  # found again from the stored folder
    assert r.returncode == 0, r.stderr


def test_entry_point_backends_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "plug_pkg").mkdir(parents=True)
    (site / "plug_pkg" / "__init__.py").write_text(USER_BACKEND)
    dist = site / "plug_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[jfhpo.backends]\nquad = plug_pkg:Quad\n")
    monkeypatch.syspath_prepend(str(site))
    cls = get_backend("quad")
    assert cls.__name__ == "Quad" and cls.__module__ == "plug_pkg"
    with pytest.raises(BackendError, match="module:Class"):
        get_backend("no_such_backend")
    with pytest.raises(BackendError, match="cannot import module"):
        get_backend("no_such_module_xyz:Thing")
    sys.modules.pop("plug_pkg", None)
