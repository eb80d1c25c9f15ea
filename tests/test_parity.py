"""`jfhpo run` and an `AskTell` loop make the same decisions for the same study and seed.

The CLI runs the synthetic backend in the inline executor (real segments, real checkpoints, a real
SQLite file); the ask/tell loop computes the same synthetic evaluations and costs itself. Both go
through the same planners (budget ledger, translation, confirmation plan), so the suggestions, the
confirmation trials and the answer must match exactly.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli, synthetic_study, write_study

from jfhpo.api import AskStatus, AskTell
from jfhpo.backends.synthetic import SyntheticBackend, SyntheticProblem

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0},
          {"name": "1m", "params": 1e6, "cost": 3.5}]
OPTIONS = {"n_init": 3, "n_candidates": 24, "fit_maxiter": 15, "min_transfer_configs": 3}


def study_dict(optimizer: dict[str, Any], steps: Any, seed: int, budget: float) -> dict[str, Any]:
    return synthetic_study(
        seed=seed, models=MODELS, steps=steps, eval_every=3, workers=1, stopping=False,
        budget={"seconds": budget}, confirm={"top_k": 1, "fraction": 0.25},
        optimizer=optimizer, executor={"name": "inline"})


def decisions(folder: Path) -> dict[str, Any]:
    """What a study decided and measured, independent of timestamps and extra metrics."""
    db = sqlite3.connect(folder / "study.sqlite")
    sugg = db.execute("SELECT kind, run_id, config, model, steps, phase FROM suggestions "
                      "ORDER BY id").fetchall()
    segs = db.execute("SELECT run_id, start_step, target_step, status, end_step, score, cost "
                      "FROM segments ORDER BY id").fetchall()
    runs = db.execute("SELECT config, model, phase, seed FROM runs ORDER BY id").fetchall()
    db.close()
    return {"suggestions": sugg, "segments": segs, "runs": runs}


def ask_tell_loop(data: dict[str, Any], folder: Path) -> AskTell:
    """The study of ``data`` driven by hand: the synthetic backend's evaluations and costs."""
    backend = SyntheticBackend(data["backend"]["options"])
    problem: SyntheticProblem = backend.problem
    rungs = {m["name"]: m for m in data["models"]}
    opt = data["optimizer"]
    at = AskTell(data["space"], data["models"], data["steps"], optimizer=opt["name"],
                 optimizer_options=opt.get("options"), seed=data["seed"],
                 budget=data["budget"]["seconds"], folder=folder, confirm=data["confirm"],
                 recipe=backend.recipe(), objective="eval_accuracy")
    every = data["eval_every"]
    while (t := at.ask()) is not None:
        params, hint = rungs[t.model]["params"], rungs[t.model]["cost"]
        curve = [(s, problem.eval_score(t.config, params, s, t.seed))
                 for s in range(t.start_step + 1, t.steps) if s % every == 0]
        score = problem.eval_score(t.config, params, t.steps, t.seed)
        at.tell(t, score, problem.cost(hint, t.steps - t.start_step), curve)
    assert at.status is AskStatus.DONE and at.done
    return at


@pytest.mark.parametrize(("optimizer", "steps", "budget"), [
    ({"name": "jfhpo", "options": OPTIONS}, {"min": 3, "max": 27, "eta": 3}, 40.0),
    ({"name": "hyperband", "options": {"model": "50k"}}, [4, 9, 27], 40.0),
])
def test_cli_and_ask_tell_make_the_same_decisions(tmp_path: Path, optimizer: dict[str, Any],
                                                  steps: Any, budget: float) -> None:
    data = study_dict(optimizer, steps, seed=3, budget=budget)
    f = write_study(tmp_path / "s.yaml", data)
    r = cli("run", str(f), "--out", str(tmp_path / "cli"), "--quiet")
    assert r.returncode == 0, r.stderr
    at = ask_tell_loop(data, tmp_path / "at")
    mine, theirs = decisions(tmp_path / "at"), decisions(tmp_path / "cli")
    assert mine["suggestions"] == theirs["suggestions"]
    assert mine["runs"] == theirs["runs"]
    assert [s[:5] for s in mine["segments"]] == [s[:5] for s in theirs["segments"]]
    assert [s[6] for s in mine["segments"]] == pytest.approx([s[6] for s in theirs["segments"]])
    confirm = [s for s in mine["suggestions"] if s[5] == "confirm"]
    assert confirm and all(s[3] == "1m" and s[4] == 27 for s in confirm)
    best = json.loads(cli("best", str(tmp_path / "cli"), "--json").stdout)
    rec = at.recommend()
    assert rec is not None and rec.confirmed
    assert (dict(rec.config), rec.model, rec.steps, rec.score) == (
        best["config"], best["model"], best["steps"], pytest.approx(best["score"]))
    at.close()


def segments_of(folder: Path) -> list[tuple[int, int, int, float]]:
    db = sqlite3.connect(folder / "study.sqlite")
    rows = db.execute("SELECT run_id, start_step, end_step, cost FROM segments "
                      "WHERE status IN (2, 3) ORDER BY id").fetchall()  # completed, stopped
    db.close()
    return rows


def hyperband_study(**changes: Any) -> dict[str, Any]:
    data = study_dict({"name": "hyperband", "options": {"model": "50k"}}, [4, 9, 27], seed=2,
                      budget=30.0)
    data.update(confirm={"top_k": 0}, **changes)
    return data


def test_cli_study_without_checkpoint_reuse_retrains_longer_runs_at_full_cost(
        tmp_path: Path) -> None:
    f = write_study(tmp_path / "s.yaml", hyperband_study(checkpoints={"reuse": False}))
    r = cli("run", str(f), "--out", str(tmp_path / "st"), "--quiet")
    assert r.returncode == 0, r.stderr
    segs = segments_of(tmp_path / "st")
    runs = [rid for rid, _, _, _ in segs]
    assert len(set(runs)) < len(runs)  # some runs were made longer...
    assert all(start == 0 for _, start, _, _ in segs)  # ...never in place
    for _, _, end, cost in segs:
        assert cost == pytest.approx(0.1 * end)  # each paid its full step count


def test_a_backend_that_cannot_resume_is_honoured_by_the_tuner(tmp_path: Path) -> None:
    from jfhpo.backends.base import Capabilities
    from jfhpo.executors.inline import InlineExecutor
    from jfhpo.optimizers.hyperband import Hyperband
    from jfhpo.spec import parse_spec
    from jfhpo.study import Study
    from jfhpo.tuner import Tuner

    class NoResume(SyntheticBackend):
        def capabilities(self) -> Capabilities:
            return Capabilities(resumable=False)

    data = hyperband_study()
    study = Study.create(tmp_path / "st", parse_spec(data), "eval_accuracy")
    ex = InlineExecutor("synthetic", data["backend"]["options"])
    try:
        Tuner(study, ex, Hyperband({"model": "50k"}), None, NoResume(data["backend"]["options"]),
              cache_dir=str(tmp_path / "cache")).run()
    finally:
        ex.shutdown()
    view = study.view(resumable=False)
    assert view.cost.between("50k", 9, 27) == view.cost.segment("50k", 27)
    assert view.budget_spent <= 30.0
    study.close()
    segs = segments_of(tmp_path / "st")
    assert len({s[0] for s in segs}) < len(segs)
    assert all(start == 0 and cost == pytest.approx(0.1 * end) for _, start, end, cost in segs)
