"""Builders for stopping-rule tests: runs and study views from plain lists of metric values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from jfhpo.fidelity import ModelLadder, ModelRung, StepBudget
from jfhpo.records import Observation, Phase, RunRecord
from jfhpo.space import FloatParam, SearchSpace
from jfhpo.stopping.base import RunHistory
from jfhpo.view import StudyView

FIXTURES = Path(__file__).parent / "fixtures"


class Curves:
    """Helpers handed to tests by the ``curves`` fixture."""

    @staticmethod
    def obs(run_id: int = 1, start: int = 1, **metrics: Sequence[float | None]) -> list[Observation]:
        """One observation per index, steps start, start+1, ...; a None value is left out."""
        n = max(len(v) for v in metrics.values())
        out = []
        for i in range(n):
            m = {k: float(v[i]) for k, v in metrics.items() if i < len(v) and v[i] is not None}
            out.append(Observation(run_id=run_id, segment_id=1, step=start + i, metrics=m))
        return out

    @staticmethod
    def history(
        observations: Sequence[Observation],
        run_id: int = 1,
        model: str = "m",
        max_steps: int = 100,
        config: Mapping[str, Any] | None = None,
    ) -> RunHistory:
        return RunHistory(
            run_id=run_id,
            model=model,
            config=dict(config or {}),
            observations=tuple(observations),
            target_step=max_steps,
            max_steps=max_steps,
        )

    @staticmethod
    def view(runs: Mapping[int, tuple[str, Sequence[Observation]]] | None = None) -> StudyView:
        """A study view holding ``runs``: run_id -> (model, observations)."""
        runs = runs or {}
        models = sorted({m for m, _ in runs.values()} | {"m"})
        return StudyView(
            space=SearchSpace([FloatParam("learning_rate", 1e-5, 1e-1, log=True)]),
            ladder=ModelLadder([ModelRung(name, params=10.0 ** (i + 3)) for i, name in enumerate(models)]),
            steps=StepBudget(min_steps=10, max_steps=100),
            seed=0,
            objective="eval_accuracy",
            runs=tuple(
                RunRecord(run_id=rid, config={}, model=model, phase=Phase.SEARCH)
                for rid, (model, _) in runs.items()
            ),
            observations={rid: tuple(obs) for rid, (_, obs) in runs.items()},
        )

    @staticmethod
    def first_stop(rule: Any, observations: Sequence[Observation], **kw: Any) -> int | None:
        """Replay ``observations`` one by one; the step at which ``rule`` first fires."""
        view = Curves.view()
        for i in range(1, len(observations) + 1):
            if rule.check(Curves.history(observations[:i], **kw), view) is not None:
                return observations[i - 1].step
        return None

    @staticmethod
    def recorded(name: str) -> list[tuple[dict[str, Any], list[Observation]]]:
        """The runs of fixture ``name``: (run record without its curve, observations)."""
        data = json.loads((FIXTURES / f"{name}.json").read_text())
        out = []
        for i, run in enumerate(data["runs"]):
            rid = i + 1
            obs = [
                Observation(rid, 1, row["step"], {k: float(v) for k, v in row["metrics"].items()})
                for row in run["curve"]
            ]
            meta = {k: v for k, v in run.items() if k != "curve"}
            out.append((meta, obs))
        return out

    @staticmethod
    def replay_group(rule: Any, runs: Sequence[tuple[dict[str, Any], list[Observation]]]) -> list[int | None]:
        """Replay runs of one model in lock step, peers visible up to the current step or their
        own stop; the stop step of each run (None: never stopped)."""
        stops: list[int | None] = [None] * len(runs)
        max_steps = max(o.step for _, obs in runs for o in obs)
        for step in range(1, max_steps + 1):
            visible = {
                i + 1: ("m", [o for o in obs if o.step <= min(step, stops[i] or step)])
                for i, (_, obs) in enumerate(runs)
            }
            view = Curves.view(visible)
            for i in range(len(runs)):
                upto = visible[i + 1][1]
                if stops[i] is not None or not upto or upto[-1].step != step:
                    continue
                hist = Curves.history(upto, run_id=i + 1, max_steps=max_steps)
                if rule.check(hist, view) is not None:
                    stops[i] = step
        return stops


@pytest.fixture
def curves() -> type[Curves]:
    return Curves
