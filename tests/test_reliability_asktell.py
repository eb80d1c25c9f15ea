"""#15 finding 8 (and the ask/tell part of 4): misuse of AskTell is refused, nothing recorded."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from jfhpo.api import AskTell, TrialError
from jfhpo.backends.synthetic import example_space
from jfhpo.lock import StudyLocked
from jfhpo.records import SegmentStatus
from jfhpo.storage import Storage

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]


def _at(folder: Path, **kw: object) -> AskTell:
    return AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer="random",
                   budget=100.0, seed=1, folder=folder, **kw)  # type: ignore[arg-type]


def _observations(folder: Path) -> int:
    st = Storage(folder / "study.sqlite", readonly=True)
    try:
        return len(st.rows("observations"))
    finally:
        st.close()


def test_second_tell_of_a_trial_is_refused(tmp_path: Path) -> None:
    at = _at(tmp_path / "s")
    t = at.ask()
    assert t is not None
    at.tell(t, 0.5, 3.0, [(5, 0.4)])
    n = _observations(tmp_path / "s")
    with pytest.raises(TrialError, match="already told"):
        at.tell(t, 0.6, 3.0)
    with pytest.raises(TrialError, match="already told"):
        at.tell(t, None, 3.0, failed=True)
    assert _observations(tmp_path / "s") == n
    assert at.view().budget_spent == 3.0
    at.close()


def test_trial_from_another_asktell_is_refused(tmp_path: Path) -> None:
    a, b = _at(tmp_path / "a"), _at(tmp_path / "b")
    ta, tb = a.ask(), b.ask()
    assert ta is not None and tb is not None
    with pytest.raises(TrialError, match="another study"):
        b.tell(ta, 0.5, 3.0)
    # the same trial with the folder mark removed is still recognised as foreign when it differs
    forged = dataclasses.replace(ta, study="", run_id=ta.run_id + 7)
    with pytest.raises(TrialError, match="does not match"):
        b.tell(forged, 0.5, 3.0)
    b.tell(tb, 0.5, 3.0)  # its own trial is fine
    a.close()
    b.close()


def test_unknown_trial_is_a_clear_error(tmp_path: Path) -> None:
    at = _at(tmp_path / "s")
    t = at.ask()
    assert t is not None
    with pytest.raises(TrialError, match="unknown to this study"):
        at.tell(dataclasses.replace(t, trial_id=999), 0.5, 3.0)
    with pytest.raises(TrialError, match="needs a Trial"):
        at.tell("trial-1", 0.5, 3.0)  # type: ignore[arg-type]
    at.close()


@pytest.mark.parametrize(("score", "cost", "needle"), [
    (math.nan, 3.0, "score must be a finite number"),
    (math.inf, 3.0, "score must be a finite number"),
    (-math.inf, 3.0, "score must be a finite number"),
    ("0.5", 3.0, "score must be a finite number"),
    (0.5, math.nan, "cost must be a finite number"),
    (0.5, math.inf, "cost must be a finite number"),
    (0.5, -1.0, "cost must be a finite number"),
    (0.5, 0.0, "cost must be > 0"),
])
def test_non_finite_scores_and_bad_costs_are_refused(tmp_path: Path, score: object, cost: float,
                                                      needle: str) -> None:
    at = _at(tmp_path / "s")
    t = at.ask()
    assert t is not None
    with pytest.raises(TrialError, match=needle):
        at.tell(t, score, cost)  # type: ignore[arg-type]
    seg = at.study.segments[t.trial_id]
    assert seg.status is SegmentStatus.RUNNING and seg.cost is None  # nothing recorded
    at.tell(t, 0.5, 3.0)  # a correct tell still works
    at.close()


def test_negative_costs_cannot_make_ask_loop_forever(tmp_path: Path) -> None:
    at = _at(tmp_path / "s")
    told = 0
    while (t := at.ask()) is not None:
        with pytest.raises(TrialError):
            at.tell(t, 0.5, -50.0)
        at.tell(t, 0.5, 10.0)
        told += 1
        assert told < 50
    # the loop ended because the budget (a cap) is spent, not because a tell was lost
    assert at.done and told > 0
    assert 0.0 < at.view().budget_spent <= 100.0
    at.close()


def test_second_writer_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    at = _at(tmp_path / "s")
    with pytest.raises(StudyLocked, match="in use by process"):
        _at(tmp_path / "s")
    at.close()
