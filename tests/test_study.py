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
