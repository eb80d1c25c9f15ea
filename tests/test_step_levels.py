"""Explicit step levels: ``steps: {levels: [...]}`` or a plain list, in study files and AskTell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli, synthetic_study, write_study

from jfhpo.fidelity import LadderError, StepBudget
from jfhpo.spec import StudyFileError, parse_spec


@pytest.mark.parametrize("steps", [[19, 53, 93], {"levels": [19, 53, 93]},
                                   {"levels": [19, 53, 93], "eta": 2}])
def test_levels_are_the_rungs(steps: Any) -> None:
    budget = parse_spec(synthetic_study(steps=steps)).step_budget()
    assert budget.rungs() == [19, 53, 93]
    assert (budget.min_steps, budget.max_steps) == (19, 93)


def test_geometric_rungs_are_unchanged() -> None:
    assert StepBudget(10, 90, 3).rungs() == [10, 30, 90]
    assert parse_spec(synthetic_study()).step_budget().rungs() == [10, 30, 90]


@pytest.mark.parametrize(("steps", "field"), [
    ([53, 19], "steps.levels"),
    ([0, 19], "steps.levels[0]"),
    ({"levels": [5], "max": 9}, "steps"),
    ({"min": 5}, "steps"),
    ({"levels": []}, "steps.levels"),
])
def test_bad_levels_name_the_field(steps: Any, field: str) -> None:
    with pytest.raises(StudyFileError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(synthetic_study(steps=steps))


def test_from_levels_checks_its_input() -> None:
    with pytest.raises(LadderError, match="strictly ascending"):
        StepBudget.from_levels([3, 3])
    with pytest.raises(LadderError, match="disagree"):
        StepBudget(1, 9, 3, (2, 9))


def test_cli_refuses_bad_levels_with_exit_code_2(tmp_path: Path) -> None:
    f = write_study(tmp_path / "s.yaml", synthetic_study(steps=[30, 10]))
    r = cli("run", str(f), "--out", str(tmp_path / "st"), "--quiet")
    assert r.returncode == 2 and "steps.levels" in r.stderr
    assert not (tmp_path / "st").exists()
