"""StudyView is frozen all the way down and carries the ledger and THE cost model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests.conftest import synthetic_study

from jfhpo.records import Phase, SegmentStatus
from jfhpo.spec import parse_spec
from jfhpo.study import Study

CFG = {"learning_rate": 1e-3, "beta": 0.01, "epsilon": 0.2, "num_generations": 8}


def study_with_a_run(tmp_path: Path) -> tuple[Study, int]:
    st = Study.create(tmp_path / "st", parse_spec(synthetic_study()), "eval_accuracy")
    sid = st.add_suggestion("start", 10, Phase.SEARCH, config=CFG,
                            model="50k")
    rid = st.add_run(sid, CFG, "50k", Phase.SEARCH)
    seg = st.add_segment(rid, sid, 0, 10)
    st.add_observation(seg, 1, {"reward": 0.1})
    st.update_segment(seg, status=int(SegmentStatus.RUNNING))
    return st, seg


def test_view_does_not_change_under_a_decision(tmp_path: Path) -> None:
    st, seg = study_with_a_run(tmp_path)
    view = st.view()
    rid = view.runs[0].run_id
    before = view.observations[rid]
    assert isinstance(before, tuple)
    st.add_observation(seg, 2, {"reward": 0.2})  # the study moves on...
    assert view.observations[rid] == before  # ...the view it gave out does not
    with pytest.raises(TypeError):
        view.observations[rid] = ()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.budget_spent = 1.0  # type: ignore[misc]
    assert len(st.view().observations[rid]) == 2
    st.close()


def test_view_carries_ledger_and_cost_model(tmp_path: Path) -> None:
    st, seg = study_with_a_run(tmp_path)
    view = st.view()
    assert not view.cost.calibrated and view.budget_committed == 0.0  # nothing measured yet
    st.update_segment(seg, status=int(SegmentStatus.COMPLETED), end_step=10, cost=5.0)
    v2 = st.view()
    assert v2.cost.calibrated and v2.budget_spent == 5.0
    assert v2.ledger.left == v2.budget_left == v2.budget_total - 5.0
    assert v2.budget_total == 600 * (1 - 0.25)  # the search share while searching
    st.close()
