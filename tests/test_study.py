"""Study: the effective configuration is stored with every run; old databases migrate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import synthetic_study

from jfhpo.records import Phase, SegmentStatus
from jfhpo.spec import parse_spec
from jfhpo.study import Study

CFG = {"learning_rate": 1e-3, "beta": 0.01, "epsilon": 0.2, "num_generations": 8}


def test_effective_config_is_stored_and_reloaded(tmp_path: Path) -> None:
    spec = parse_spec(synthetic_study(fixed={"temperature": 0.7}))
    st = Study.create(tmp_path / "st", spec, "eval_accuracy")
    sid = st.add_suggestion("start", 90, Phase.SEARCH, config=CFG,
                            model="4m")
    eff = {**CFG, "temperature": 0.7}
    rid = st.add_run(sid, CFG, "4m", Phase.SEARCH, eff)
    seg = st.add_segment(rid, sid, 0, 90)
    st.add_observation(seg, 90, {"eval_accuracy": 0.5})
    st.update_segment(seg, status=int(SegmentStatus.COMPLETED), end_step=90, cost=1.0)
    st.close()
    again = Study.open(tmp_path / "st")
    best = again.best()
    assert best is not None and best["effective_config"] == eff
    again.close()


def test_an_old_database_without_the_column_migrates(tmp_path: Path) -> None:
    spec = parse_spec(synthetic_study(fixed={"temperature": 0.7}))
    st = Study.create(tmp_path / "st", spec, "eval_accuracy")
    sid = st.add_suggestion("start", 90, Phase.SEARCH, config=CFG,
                            model="4m")
    rid = st.add_run(sid, CFG, "4m", Phase.SEARCH)
    seg = st.add_segment(rid, sid, 0, 90)
    st.add_observation(seg, 90, {"eval_accuracy": 0.5})
    st.update_segment(seg, status=int(SegmentStatus.COMPLETED), end_step=90, cost=1.0)
    st.close()
    db = sqlite3.connect(tmp_path / "st" / "study.sqlite")
    db.execute("ALTER TABLE runs DROP COLUMN effective_config")  # as jfhpo 0.x wrote it
    db.commit()
    db.close()
    old = Study.open(tmp_path / "st")  # migrates
    cols = [r[1] for r in old.storage.conn.execute("PRAGMA table_info(runs)")]
    assert "effective_config" in cols
    best = old.best()
    assert best is not None
    # not stored for the old run: rebuilt from the backend (recipe, fixed, searched)
    assert best["effective_config"]["temperature"] == 0.7
    assert best["effective_config"]["learning_rate"] == 1e-3
    assert best["effective_config"]["beta"] == 0.01  # searched over recipe
    assert set(best["effective_config"]) == {*CFG, "temperature"}
    old.close()


def _run(st: Study, model: str, phase: Phase, curve: dict[int, float], config: dict) -> int:
    sid = st.add_suggestion("start", max(curve), phase, config=config, model=model)
    rid = st.add_run(sid, config, model, phase, config)
    seg = st.add_segment(rid, sid, 0, max(curve))
    for step, value in sorted(curve.items()):
        st.add_observation(seg, step, {"eval_accuracy": value})
    st.update_segment(seg, status=int(SegmentStatus.COMPLETED), end_step=max(curve), cost=1.0)
    return rid


def test_a_diverged_confirmation_is_not_the_answer_while_a_sound_run_exists(
        tmp_path: Path) -> None:
    """At a budget of a few target runs the only confirmation can diverge after the steps the
    search saw: the answer is then the best run of a configuration that did not diverge, below
    the learning rate that did, not the collapsed one."""
    st = Study.create(tmp_path / "st", parse_spec(synthetic_study()), "eval_accuracy")
    a, b = {**CFG, "learning_rate": 3e-3}, {**CFG, "learning_rate": 3e-4}
    _run(st, "4m", Phase.SEARCH, {10: 0.60, 30: 0.68}, a)
    sound = _run(st, "4m", Phase.SEARCH, {10: 0.58, 30: 0.64}, b)
    # led at 30 steps too, but above the learning rate that diverged: not the answer either
    _run(st, "4m", Phase.SEARCH, {10: 0.62, 30: 0.70}, {**CFG, "learning_rate": 6e-3})
    _run(st, "4m", Phase.CONFIRM, {10: 0.61, 30: 0.69, 60: 0.35, 90: 0.05}, a)
    best = st.best()
    assert best is not None and best["run_id"] == sound and best["steps"] == 30
    assert "diverged" in best["how"]
    # a sound confirmation of the other configuration is the answer, as before
    confirmed = _run(st, "4m", Phase.CONFIRM, {10: 0.58, 30: 0.64, 60: 0.68, 90: 0.70}, b)
    best = st.best()
    assert best is not None and best["run_id"] == confirmed and best["steps"] == 90
    st.close()


def test_full_budget_runs_are_ranked_by_the_mean_of_their_last_evaluations(
        tmp_path: Path) -> None:
    """Of two confirmations, the one whose last three evaluations average higher is the answer,
    not the one with the single highest (lucky) final score; both scores are reported."""
    st = Study.create(tmp_path / "st", parse_spec(synthetic_study()), "eval_accuracy")
    a, b = {**CFG, "learning_rate": 3e-4}, {**CFG, "learning_rate": 1e-4}
    _run(st, "4m", Phase.CONFIRM, {30: 0.50, 70: 0.60, 80: 0.61, 90: 0.70}, a)  # end mean 0.637
    steady = _run(st, "4m", Phase.CONFIRM, {30: 0.50, 70: 0.66, 80: 0.67, 90: 0.68}, b)  # 0.670
    best = st.best()
    assert best is not None and best["run_id"] == steady
    assert best["score"] == 0.68 and abs(best["end_score"] - 0.67) < 1e-9
    assert "mean of the last evaluations" in best["how"] and "highest final score (0.7)" in best["how"]
    st.close()
