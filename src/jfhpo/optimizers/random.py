"""Random search: configurations drawn uniformly, each trained at one fixed fidelity.

By default that fidelity is the target model at the full step budget (the paper's "Random
Search" baseline); ``model`` and ``steps`` options pick another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jfhpo.optimizers.base import Optimizer, OptimizerError, register_optimizer
from jfhpo.records import RunRecord, Start, Suggestion
from jfhpo.view import StudyView


@register_optimizer
class RandomSearch(Optimizer):
    """Options: ``model`` (default: the target), ``steps`` (default: the full budget)."""

    name = "random"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        bad = set(self.options) - {"model", "steps"}
        if bad:
            raise OptimizerError(f"optimizer.options: unknown key(s) {sorted(bad)} for random; "
                                 "valid: ['model', 'steps']")

    def suggest(self, view: StudyView) -> Suggestion | None:
        model = self._model(view)
        steps = int(self.options.get("steps", view.steps.max_steps))
        return Start(view.space.sample(view.rng()), model, steps)

    def may_extend(self, view: StudyView, run: RunRecord) -> bool:
        return False
