"""The typed results layer against the raw SQLite rows of real synthetic studies."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from scipy import stats
from tests.conftest import cli

from jfhpo.backends.synthetic import SyntheticBackend
from jfhpo.records import Phase
from jfhpo.results import Outcome, study_results
from jfhpo.study import Study


def _rows(folder: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{folder / 'study.sqlite'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def test_segments_runs_and_budget_match_storage(report_study: Path) -> None:
    study = Study.open(report_study)
    try:
        res = study_results(study)
    finally:
        study.close()
    segs = _rows(report_study, "SELECT * FROM segments ORDER BY id")
    assert [s.segment_id for s in res.segments] == [r["id"] for r in segs]
    for s, row in zip(res.segments, segs):
        later = [r for r in segs if r["run_id"] == row["run_id"] and r["id"] > row["id"]]
        expected = {2: Outcome.EXTENDED if later else Outcome.FINISHED, 3: Outcome.STOPPED,
                    4: Outcome.FAILED}[row["status"]]
        assert s.outcome is expected, (s, dict(row))
        assert s.stop_rule == row["reason_rule"]
        if s.outcome is Outcome.EXTENDED:  # the next segment resumes where this one ended
            assert later[0]["start_step"] == row["end_step"]
    assert any(s.outcome is Outcome.STOPPED for s in res.segments)
    assert any(s.outcome is Outcome.EXTENDED for s in res.segments)

    runs = {r["id"]: r for r in _rows(report_study, "SELECT * FROM runs")}
    by_phase: dict[str, float] = {"search": 0.0, "confirm": 0.0}
    for row in segs:
        by_phase[runs[row["run_id"]]["phase"]] += row["cost"]
    assert res.budget.by_phase == by_phase
    assert by_phase["confirm"] > 0
    assert sum(by_phase.values()) == res.budget.spent_compute


def test_best_so_far_trace(report_study: Path) -> None:
    study = Study.open(report_study)
    try:
        res = study_results(study)
    finally:
        study.close()
    segs = _rows(report_study, "SELECT s.*, r.model FROM segments s JOIN runs r "
                               "ON r.id = s.run_id ORDER BY s.finished, s.id")
    assert res.trace[-1].spent == sum(r["cost"] for r in segs)
    target = [p for p in res.trace if p.model == res.target]
    assert target, "the target was trained"
    bests = [p.best for p in target]
    assert bests == sorted(bests)  # best so far never gets worse (mode: max)
    assert bests[-1] == max(r["score"] for r in segs if r["model"] == res.target
                            and r["score"] is not None)
    assert [p.spent for p in res.trace] == sorted(p.spent for p in res.trace)


def test_winner_and_effective_configuration(report_study: Path) -> None:
    study = Study.open(report_study)
    try:
        res = study_results(study)
    finally:
        study.close()
    best = json.loads(cli("best", str(report_study), "--json").stdout)
    w = res.winner
    assert w is not None
    assert (w.run_id, w.score, dict(w.config)) == (best["run_id"], best["score"], best["config"])
    expected = {**SyntheticBackend.recipe(), "epsilon": 0.25, **best["config"]}
    assert dict(w.effective_config) == expected
    assert w.effective_config["epsilon"] == 0.25  # the study's fixed key, not the recipe's 0.2
    recipe = SyntheticBackend.recipe()
    recipe_won = dict(w.config) == {k: recipe[k] for k in w.config}
    labels = [v.label for v in res.versus]
    assert labels == (["winner (the recipe itself)"] if recipe_won else ["winner", "recipe"])
    same = [r.score for r in res.runs if r.model == w.model and r.steps_done == w.steps
            and r.score is not None and dict(r.config) == dict(w.config)]
    assert res.versus[0].score == pytest.approx(sum(same) / len(same))  # every target run of it
    assert res.versus[0].n_runs == len(same)
    assert all(v.spread is not None and v.spread >= 0 for v in res.versus)
    recipe_run = next(r for r in res.runs if r.phase is Phase.CONFIRM
                      and dict(r.config) == {k: recipe[k] for k in r.config})
    assert res.versus[-1].score == recipe_run.score
    assert [c.run_id for c in res.confirmation] == [
        r.run_id for r in sorted((r for r in res.runs if r.phase is Phase.CONFIRM),
                                 key=lambda r: -(r.score or 0.0))]


def test_transfer_points_reproduce_the_stored_figures(report_study: Path) -> None:
    study = Study.open(report_study)
    try:
        res = study_results(study)
    finally:
        study.close()
    measured = [t for t in res.transfer if t.spearman is not None]
    assert measured, "the study measured rank agreement between some model pair"
    for t in measured:
        xs, ys = zip(*t.points)
        assert len(t.points) == t.n_configs
        assert abs(stats.spearmanr(xs, ys).statistic - t.spearman) < 1e-9
        assert abs(stats.kendalltau(xs, ys).statistic - t.kendall) < 1e-9


def test_stored_effective_configuration_is_preferred(report_study: Path, tmp_path: Path) -> None:
    """Where the engine stored a run's effective configuration (runs.effective_config), the
    results layer reads it instead of composing one."""
    copy = tmp_path / "S"
    shutil.copytree(report_study, copy)
    conn = sqlite3.connect(copy / "study.sqlite")
    conn.execute("UPDATE runs SET effective_config = ? WHERE id = 1",
                 (json.dumps({"learning_rate": 0.5, "from": "storage"}),))
    conn.commit()
    conn.close()
    study = Study.open(copy)
    try:
        res = study_results(study)
    finally:
        study.close()
    assert dict(res.run(1).effective_config) == {"learning_rate": 0.5, "from": "storage"}
    assert res.run(2).effective_config["epsilon"] == 0.25  # as the engine stored it


def test_failed_runs(failing_study: Path) -> None:
    study = Study.open(failing_study)
    try:
        res = study_results(study)
        target = study.ladder.target.name
    finally:
        study.close()
    failed = [r for r in res.runs if r.outcome is Outcome.FAILED]
    assert len(failed) == 3
    assert all(r.error and "fail_at_step" in r.error for r in failed)
    assert sum(1 for s in res.segments if s.outcome is Outcome.FAILED) == 3
    assert res.winner is not None and "no confirmation" in res.winner.how
    # nothing was confirmed, so no recipe row; the winner's own row only where it was trained on
    # the target (a search run there), with its one score
    on_target = res.winner.model == target
    assert [v.label for v in res.versus] == (["winner"] if on_target else [])
    assert all(v.score == res.winner.score for v in res.versus)


def test_status_reads_the_results_layer(report_study: Path) -> None:
    d = json.loads(cli("status", str(report_study), "--json").stdout)
    assert set(d["budget"]["by_phase"]) == {"search", "confirm"}
    assert d["best"]["effective_config"]["epsilon"] == 0.25
    text = cli("status", str(report_study)).stdout
    assert "spent by phase: search" in text
    assert "effective (recipe + fixed + searched)" in text
