"""The conformance kits (jfhpo.testing) pass on our own optimizers and backend, and catch a
broken plug-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jfhpo.backends.synthetic import SyntheticBackend
from jfhpo.fidelity import ModelRung
from jfhpo.optimizers.base import Optimizer, get_optimizer
from jfhpo.records import RunRecord, Start, Suggestion
from jfhpo.testing import check_backend, check_optimizer
from jfhpo.view import StudyView


@pytest.mark.parametrize(("name", "options", "trials"), [
    ("random", {"model": "50k", "steps": 10}, 20), ("hyperband", {}, 25), ("bohb", {}, 25),
    ("jfhpo", {"n_init": 3, "fit_maxiter": 10, "n_candidates": 32}, 6),
])
def test_our_optimizers_conform(name: str, options: dict[str, Any], trials: int) -> None:
    cls = get_optimizer(name)
    assert check_optimizer(lambda: cls(options), max_trials=trials) > 0


def test_synthetic_backend_conforms(tmp_path: Path) -> None:
    check_backend(SyntheticBackend({}), ModelRung("50k", 5e4), {"learning_rate": 1e-3},
                  tmp_path)


class Impure(Optimizer):
    """Broken on purpose: its decision depends on a hidden counter, not on the view."""

    name = "impure-test"
    calls = 0

    def suggest(self, view: StudyView) -> Suggestion | None:
        Impure.calls += 1
        return Start(view.space.sample(view.rng(Impure.calls)), view.ladder.target.name, 10)

    def may_extend(self, view: StudyView, run: RunRecord) -> bool:
        return False


def test_the_kit_catches_an_impure_optimizer() -> None:
    with pytest.raises(AssertionError, match="the same view gave"):
        check_optimizer(Impure)


class NoResume(SyntheticBackend):
    """Broken on purpose: claims resumable checkpoints but restarts at step 0."""

    name = "no-resume-test"

    def run_segment(self, task: Any, report: Any) -> Any:
        import dataclasses

        return super().run_segment(dataclasses.replace(task, resume_from=None, start_step=0),
                                   report)


def test_the_kit_catches_a_backend_that_does_not_resume(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        check_backend(NoResume({}), ModelRung("50k", 5e4), {"learning_rate": 1e-3}, tmp_path)
