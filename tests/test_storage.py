from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from tests.conftest import synthetic_study

from jfhpo.records import Phase, SegmentStatus
from jfhpo.spec import parse_spec
from jfhpo.storage import Storage, StorageError
from jfhpo.study import Study

CONFIG = {"learning_rate": 1e-4, "beta": 1e-3, "epsilon": 0.2, "num_generations": 8}


def make_study(tmp_path: Path) -> Study:
    return Study.create(tmp_path / "s", parse_spec(synthetic_study()), "eval_accuracy")


def test_state_is_rebuilt_from_the_file(tmp_path: Path) -> None:
    st = make_study(tmp_path)
    sid = st.add_suggestion("start", 30, Phase.SEARCH, config=CONFIG, model="1m")
    rid = st.add_run(sid, CONFIG, "1m", Phase.SEARCH)
    seg = st.add_segment(rid, sid, 0, 30)
    st.update_segment(seg, status=int(SegmentStatus.RUNNING))
    st.add_observation(seg, 1, {"reward": 0.5, "kl": float("nan"), "note": "text is dropped"})
    st.add_observation(seg, 30, {"reward": 0.6, "eval_accuracy": 0.7})
    st.update_segment(seg, status=int(SegmentStatus.COMPLETED), end_step=30, score=0.7, cost=3.0)
    before = st.run_record(rid)
    st.close()
    again = Study.open(tmp_path / "s")
    after = again.run_record(rid)
    assert after == before
    assert after.score == 0.7 and after.steps_done == 30 and after.cost == 3.0
    obs = again.obs[rid]
    assert math.isnan(obs[0].metrics["kl"]) and "note" not in obs[0].metrics
    assert again.spec == parse_spec(synthetic_study())
    again.close()


def test_interrupted_segments_are_hidden_and_kept(tmp_path: Path) -> None:
    st = make_study(tmp_path)
    sid = st.add_suggestion("start", 30, Phase.SEARCH, config=CONFIG, model="1m")
    rid = st.add_run(sid, CONFIG, "1m", Phase.SEARCH)
    seg = st.add_segment(rid, sid, 0, 30)
    st.update_segment(seg, status=int(SegmentStatus.RUNNING))
    st.add_observation(seg, 1, {"reward": 0.5})
    st.close()
    again = Study.open(tmp_path / "s")
    lost = again.mark_interrupted()
    assert [s.segment_id for s in lost] == [seg]
    assert again.obs.get(rid, []) == []
    assert len(again.storage.rows("observations")) == 1  # still in the file
    again.close()


def test_full_disk_gives_a_clear_error_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    st = make_study(tmp_path)
    sid = st.add_suggestion("start", 30, Phase.SEARCH, config=CONFIG, model="1m")
    rid = st.add_run(sid, CONFIG, "1m", Phase.SEARCH)
    seg = st.add_segment(rid, sid, 0, 10_000)
    # SQLite's own page cap makes the database "full" exactly as a full disk would
    pages = st.storage.conn.execute("PRAGMA page_count").fetchone()[0]
    st.storage.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    written = 0
    with pytest.raises(StorageError, match="is full") as exc:
        for step in range(1, 10_000):
            st.add_observation(seg, step, {"reward": 0.5, "pad": 1.0, "x" * 50: 2.0})
            written += 1
    assert "jfhpo resume" in str(exc.value)
    st.close()
    again = Study.open(tmp_path / "s")
    assert len(again.obs[rid]) == written
    again.close()


def test_no_study_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no study database"):
        Storage(tmp_path / "missing.sqlite")
    with pytest.raises(StorageError, match="not a study folder"):
        Study.open(tmp_path)


def test_spec_round_trips_through_storage(tmp_path: Path) -> None:
    spec = parse_spec(synthetic_study())
    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec


def test_a_reader_snapshot_never_sees_a_segment_of_a_run_it_did_not_see(tmp_path: Path) -> None:
    """A reader loads table after table while a writer goes on: inside ``snapshot()`` it sees
    one state of the file (a status read during a run once failed on exactly this)."""
    st = make_study(tmp_path)
    sid = st.add_suggestion("start", 30, Phase.SEARCH, config=CONFIG, model="1m")
    st.add_segment(st.add_run(sid, CONFIG, "1m", Phase.SEARCH), sid, 0, 30)
    reader = Storage(tmp_path / "s" / "study.sqlite", readonly=True)
    with reader.snapshot():
        runs = {r["id"] for r in reader.rows("runs")}
        sid2 = st.add_suggestion("start", 30, Phase.SEARCH, config=CONFIG, model="1m")
        st.add_segment(st.add_run(sid2, CONFIG, "1m", Phase.SEARCH), sid2, 0, 30)  # the writer
        segs = reader.rows("segments")
        assert len(runs) == 1 and {s["run_id"] for s in segs} <= runs
    assert len(reader.rows("segments")) == 2  # after the snapshot: the new state
    reader.close()
    st.close()
