"""Ask/tell: drive any jfhpo optimizer from your own code, with two fidelity axes.

    at = AskTell(space={"lr": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True}},
                 models=[{"name": "0.5b", "params": 5e8}, {"name": "7b", "params": 7e9, "cost": 12}],
                 steps={"min": 10, "max": 100}, optimizer="jfhpo", seed=0, budget=3600)
    while (trial := at.ask()) is not None:
        score, cost, curve = my_objective(trial.config, trial.model, trial.start_step, trial.steps)
        at.tell(trial, score, cost, curve)
    print(at.best())

A trial with ``start_step > 0`` extends run ``trial.run_id``: continue that run from its state at
``start_step`` (only the new steps cost anything). Everything is stored in a real study folder
(a temporary one unless ``folder`` is given), so ``jfhpo status`` works on it too.

A driver that crashed reopens its folder with ``AskTell.open(folder)`` (or by passing the same
``folder`` again): the trials it had asked but not told are asked again first (same run, same
steps), nothing told is lost or counted twice, and the search goes on where it was.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jfhpo.fidelity import StepBudget
from jfhpo.optimizers.base import Optimizer, get_optimizer
from jfhpo.planning.ledger import suggestion_cost
from jfhpo.planning.resume import DecisionInfo, Pending, RunInfo, pending_work
from jfhpo.records import Extend, Phase, SegmentStatus, Start
from jfhpo.spec import parse_spec
from jfhpo.study import Study
from jfhpo.view import StudyView


@dataclass(frozen=True)
class Trial:
    """One piece of work: train ``config`` on ``model`` from ``start_step`` to ``steps``."""

    trial_id: int
    run_id: int
    config: Mapping[str, Any]
    model: str
    start_step: int
    steps: int
    phase: Phase = Phase.SEARCH


class AskTell:
    """An optimizer plus a study, without executors: you run the trials."""

    def __init__(
        self,
        space: Mapping[str, Mapping[str, Any]],
        models: Sequence[Mapping[str, Any]],
        steps: Mapping[str, int] | StepBudget,
        optimizer: str | Optimizer = "jfhpo",
        optimizer_options: Mapping[str, Any] | None = None,
        seed: int = 0,
        budget: float = 1e18,
        folder: str | Path | None = None,
        mode: str = "max",
        workers: int = 1,
    ) -> None:
        if isinstance(steps, StepBudget):
            steps = {"min": steps.min_steps, "max": steps.max_steps, "eta": steps.eta}
        name = optimizer if isinstance(optimizer, str) else optimizer.name
        spec = parse_spec({
            "name": "ask-tell", "seed": seed, "backend": {"name": "external"},
            "objective": {"metric": "score", "mode": mode}, "models": [dict(m) for m in models],
            "steps": dict(steps), "space": {k: dict(v) for k, v in space.items()},
            "optimizer": {"name": name, "options": dict(optimizer_options or {})},
            "stopping": False, "budget": {"seconds": budget}, "confirm": {"top_k": 0},
            "workers": workers,
        })
        self._tmp = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="jfhpo-asktell-")
            folder = self._tmp.name
        self._pending: deque[Pending] = deque()
        if (Path(folder) / "study.sqlite").exists():
            self.study = Study.open(folder)  # a driver coming back: carry on with its study
            self._resume()
        else:
            self.study = Study.create(folder, spec, "score")
        self.optimizer = (optimizer if isinstance(optimizer, Optimizer)
                          else get_optimizer(optimizer)(optimizer_options))
        self.workers = workers

    @classmethod
    def open(cls, folder: str | Path, optimizer: str | Optimizer | None = None,
             optimizer_options: Mapping[str, Any] | None = None,
             workers: int | None = None) -> AskTell:
        """Reopen an existing ask/tell study folder (after a crash, or to go on later). The
        optimizer defaults to the study's own."""
        self = cls.__new__(cls)
        self._tmp = None
        self._pending = deque()
        self.study = Study.open(folder)
        spec = self.study.spec
        if optimizer is None:
            optimizer, optimizer_options = spec.optimizer.name, spec.optimizer.options
        self.optimizer = (optimizer if isinstance(optimizer, Optimizer)
                          else get_optimizer(optimizer)(optimizer_options))
        self.workers = workers or spec.workers
        self._resume()
        return self

    def _resume(self) -> None:
        """Trials asked but never told by a process that died: ask them again first."""
        st = self.study
        st.mark_interrupted()
        decisions = [DecisionInfo(r.suggestion_id, r.kind, r.steps, r.phase, r.run_id, r.config,
                                  r.model) for r in st.suggestions]
        runs = {rid: RunInfo(rid, r.suggestion_id, r.config, r.model, r.phase,
                             st.run_record(rid).steps_done) for rid, r in st.runs.items()}
        # the caller keeps its own checkpoints: assume every run can continue where it was
        have = {(s.run_id, s.start_step) for s in st.segments.values()}
        have |= {(r.run_id, r.steps_done) for r in runs.values()}
        self._pending.extend(pending_work(decisions, st.segments.values(), runs, have))

    def view(self) -> StudyView:
        return self.study.view(self.workers)

    def ask(self) -> Trial | None:
        """The next trial, or None when the budget is spent or the optimizer waits for pending
        trials (tell them first)."""
        st = self.study
        if self._pending:
            p = self._pending.popleft()
            rid = p.run_id
            if rid is None:
                assert p.config is not None and p.model is not None
                rid = st.add_run(p.suggestion_id, p.config, p.model, p.phase)
            seg = st.add_segment(rid, p.suggestion_id, p.start, p.target)
            st.update_segment(seg, status=int(SegmentStatus.RUNNING))
            return Trial(seg, rid, dict(st.runs[rid].config), st.runs[rid].model, p.start,
                         p.target, p.phase)
        view = self.view()
        if view.ledger.left <= 0:
            return None
        s = self.optimizer.suggest(view)
        if s is None or not view.ledger.can_pay(suggestion_cost(view, s)):
            return None
        if isinstance(s, Start):
            config = st.space.validate(s.config)
            sid = st.add_suggestion("start", s.steps, s.phase, config=config, model=s.model)
            rid = st.add_run(sid, config, s.model, s.phase)
            start, steps, model = 0, s.steps, s.model
        elif isinstance(s, Extend):
            rec = view.run(s.run_id)
            sid = st.add_suggestion("extend", s.steps, s.phase, run_id=s.run_id)
            rid, start, steps, model, config = s.run_id, rec.steps_done, s.steps, rec.model, dict(
                rec.config)
        else:  # pragma: no cover
            raise TypeError(s)
        seg = st.add_segment(rid, sid, start, steps)
        st.update_segment(seg, status=int(SegmentStatus.RUNNING))
        return Trial(seg, rid, config, model, start, steps, s.phase)

    def tell(self, trial: Trial, score: float | None, cost: float,
             curve: Sequence[tuple[int, float]] | None = None, failed: bool = False) -> None:
        """Report a trial's final score (at ``trial.steps``), its cost, and optionally its
        learning curve as (step, score) pairs; ``failed=True`` when it could not be scored."""
        st = self.study
        if failed or score is None:
            st.update_segment(trial.trial_id, status=int(SegmentStatus.FAILED), cost=float(cost),
                              error="reported failed by the caller")
            return
        points = {int(s): float(v) for s, v in (curve or []) if trial.start_step < s < trial.steps}
        points[trial.steps] = float(score)
        for step in sorted(points):
            st.add_observation(trial.trial_id, step, {"score": points[step]})
        st.update_segment(trial.trial_id, status=int(SegmentStatus.COMPLETED),
                          end_step=trial.steps, score=float(score), cost=float(cost))
        st.refresh_transfer()  # transfer figures stay current for status and the optimizer

    def best(self) -> dict[str, Any] | None:
        return self.study.best()

    def close(self) -> None:
        self.study.close()
        if self._tmp is not None:
            self._tmp.cleanup()
