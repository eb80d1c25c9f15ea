"""Ask/tell: drive any jfhpo optimizer from your own code, with two fidelity axes.

    at = AskTell(space={"lr": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True}},
                 models=[{"name": "0.5b", "params": 5e8}, {"name": "7b", "params": 7e9, "cost": 12}],
                 steps={"min": 10, "max": 100}, optimizer="jfhpo", seed=0, budget=3600)
    while (trial := at.ask()) is not None:
        score, cost, curve = my_objective(trial.config, trial.model, trial.start_step, trial.steps)
        at.tell(trial, score, cost, curve)
    print(at.recommend())

``AskTell`` is a thin layer over the planners the tuner uses (``jfhpo.planning``): the same budget
ledger (the search gets the budget minus the confirmation reserve), the same translation of a
suggestion into a run and a segment, the same confirmation plan. After the search share is spent,
``ask()`` hands out the confirmation trials (the target at the full step budget), then None; so the
same study and seed give the same decisions as ``jfhpo run``. The budget is a cap: a trial is
handed out only when the cost model's prediction of it fits what is left.

A trial with ``start_step > 0`` extends run ``trial.run_id``: continue that run from its state at
``start_step`` (only the new steps cost anything). With ``resumable=False`` there are no such
trials: a longer run is a fresh run from step 0 and is priced as one. Cost is told in any unit
(seconds, GPU-hours, tokens), the same unit as ``budget``. Everything is stored in a real study
folder (a temporary one unless ``folder`` is given), so ``jfhpo status`` works on it too.

A driver that crashed reopens its folder with ``AskTell.open(folder)`` (or by passing the same
``folder`` again): the trials it had asked but not told are asked again first (same run, same
steps), nothing told is lost or counted twice, and the study goes on where it was.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jfhpo import wiring
from jfhpo.backends.base import Capabilities
from jfhpo.fidelity import StepBudget
from jfhpo.lock import StudyLock
from jfhpo.optimizers.base import Optimizer, get_optimizer
from jfhpo.planning import translate
from jfhpo.planning.ledger import suggestion_cost
from jfhpo.planning.resume import Pending
from jfhpo.records import Phase, SegmentStatus
from jfhpo.spec import parse_spec
from jfhpo.study import Study
from jfhpo.view import StudyView

__all__ = ["AskStatus", "AskTell", "Recommendation", "Trial"]


@dataclass(frozen=True)
class Trial:
    """One piece of work: train ``config`` on ``model`` from ``start_step`` to ``steps``.

    ``seed`` is the run's seed (the same for every segment of the run); ``phase`` is ``search``
    or ``confirm`` (a confirmation run: the target at the full step budget)."""

    trial_id: int
    run_id: int
    config: Mapping[str, Any]
    model: str
    start_step: int
    steps: int
    phase: Phase = Phase.SEARCH
    seed: int = 0
    study: str = ""  # the folder of the study that asked it (a trial is told to that study only)


class TrialError(ValueError):
    """A ``tell`` that cannot be recorded: a trial told twice, from another study, unknown, or
    with a non-finite score or an impossible cost. Nothing is written."""


class AskStatus(str, enum.Enum):
    """Why the last ``ask()`` returned what it did."""

    TRIAL = "trial"  # a trial was handed out
    WAITING = "waiting"  # nothing to do until running trials are told
    DONE = "done"  # the study is over: search and confirmation are done (or unaffordable)


@dataclass(frozen=True)
class Recommendation:
    """The study's current answer, as the tuner would give it.

    ``score`` is the measured target score at the full step budget when the answer has one
    (``confirmed``); otherwise ``predicted`` (and its ``std``) is the optimizer surrogate's
    prediction of it, when the optimizer has a surrogate. ``model`` and ``steps`` say where the
    configuration was measured. Scores are in the objective's own orientation."""

    config: Mapping[str, Any]
    model: str
    steps: int
    run_id: int | None
    confirmed: bool
    score: float | None
    predicted: float | None
    std: float | None
    how: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = dict(self.config)
        return out


class _Recipe:
    """What the confirmation planner reads from a backend: the recipe (and the effective
    configuration of a run, which ask/tell does not know beyond the configuration itself)."""

    def __init__(self, recipe: Mapping[str, Any] | None) -> None:
        self._recipe = dict(recipe or {})

    def recipe(self) -> dict[str, Any]:
        return dict(self._recipe)

    def effective_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config)  # your trainer's own defaults are not known here


def _steps_section(steps: Mapping[str, Any] | Sequence[int] | StepBudget) -> Any:
    if isinstance(steps, StepBudget):
        if steps.levels:
            return {"levels": list(steps.levels), "eta": steps.eta}
        return {"min": steps.min_steps, "max": steps.max_steps, "eta": steps.eta}
    return list(steps) if not isinstance(steps, Mapping) else dict(steps)


class AskTell:
    """An optimizer plus a study, without executors: you run the trials.

    ``budget``: the cap, in the unit you tell costs in. ``confirm``: the study file's ``confirm:``
    section (``top_k``, ``fraction``: the budget share reserved for confirmation). ``recipe``: a
    configuration to confirm beside the optimizer's picks (your trainer's defaults), or None.
    ``resumable``: False when your trainer cannot continue a run from a checkpoint. ``steps``:
    ``{"min", "max", "eta"}``, ``{"levels": [...]}`` or a plain list of step counts."""

    def __init__(
        self,
        space: Mapping[str, Mapping[str, Any]],
        models: Sequence[Mapping[str, Any]],
        steps: Mapping[str, Any] | Sequence[int] | StepBudget,
        optimizer: str | Optimizer = "jfhpo",
        optimizer_options: Mapping[str, Any] | None = None,
        seed: int = 0,
        budget: float = 1e18,
        folder: str | Path | None = None,
        mode: str = "max",
        workers: int = 1,
        confirm: Mapping[str, Any] | None = None,
        recipe: Mapping[str, Any] | None = None,
        resumable: bool = True,
        objective: str = "score",
    ) -> None:
        name = optimizer if isinstance(optimizer, str) else optimizer.name
        confirm_section = {"include_recipe": recipe is not None, **dict(confirm or {})}
        spec = parse_spec({
            "name": "ask-tell", "seed": seed, "backend": {"name": "external"},
            "objective": {"metric": objective, "mode": mode}, "models": [dict(m) for m in models],
            "steps": _steps_section(steps), "space": {k: dict(v) for k, v in space.items()},
            "optimizer": {"name": name, "options": dict(optimizer_options or {})},
            "stopping": False, "budget": {"seconds": budget}, "confirm": confirm_section,
            "workers": workers, "checkpoints": {"reuse": bool(resumable)},
        })
        self._tmp = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="jfhpo-asktell-")
            folder = self._tmp.name
        lock = _lock(folder)
        try:
            if (Path(folder) / "study.sqlite").exists():
                study = Study.open(folder)  # a driver coming back: carry on with its study
            else:
                study = Study.create(folder, spec, objective)
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        self._setup(study, optimizer if isinstance(optimizer, Optimizer)
                    else get_optimizer(optimizer)(optimizer_options), workers, recipe)

    def _setup(self, study: Study, optimizer: Optimizer, workers: int,
               recipe: Mapping[str, Any] | None) -> None:
        self.study, self.optimizer, self.workers = study, optimizer, workers
        self.caps = Capabilities(checkpoint_every=0, resumable=study.spec.checkpoints.reuse)
        self._recipe = _Recipe(recipe)
        wiring.remember_recipe(study, self._recipe)  # the optimizer's view shows it from the start
        self._planned = False  # the confirmation plan was made (or checked) by this process
        self._topped_at = -1  # finished confirmation runs when the plan was last topped up
        #: why the last ``ask()`` returned what it did
        self.status = AskStatus.TRIAL
        study.mark_interrupted()  # asked but never told by a process that died: asked again

    @classmethod
    def open(cls, folder: str | Path, optimizer: str | Optimizer | None = None,
             optimizer_options: Mapping[str, Any] | None = None, workers: int | None = None,
             recipe: Mapping[str, Any] | None = None) -> AskTell:
        """Reopen an existing ask/tell study folder (after a crash, or to go on later). The
        optimizer defaults to the study's own; ``recipe`` as given to the constructor."""
        self = cls.__new__(cls)
        self._tmp = None
        self._lock = _lock(folder)
        try:
            study = Study.open(folder)
        except BaseException:
            self._lock.release()
            raise
        spec = study.spec
        if optimizer is None:
            optimizer, optimizer_options = spec.optimizer.name, spec.optimizer.options
        self._setup(study, optimizer if isinstance(optimizer, Optimizer)
                    else get_optimizer(optimizer)(optimizer_options), workers or spec.workers,
                    recipe)
        return self

    # ---- state -------------------------------------------------------------------------------
    def view(self) -> StudyView:
        """The study's view, as the optimizer sees it (budget figures from the ledger)."""
        return self.study.view(self.workers, resumable=self.caps.resumable)

    @property
    def done(self) -> bool:
        """True once the study is over (``ask()`` will only return None)."""
        return self.status is AskStatus.DONE

    def _running(self) -> int:
        return sum(1 for s in self.study.segments.values()
                   if s.status in (SegmentStatus.QUEUED, SegmentStatus.RUNNING))

    def _checkpoints(self) -> set[tuple[int, int]]:
        """Your trainer keeps each run's state: every run can continue where it was."""
        st = self.study
        have = {(s.run_id, s.start_step) for s in st.segments.values()}
        return have | {(rid, st.run_record(rid).steps_done) for rid in st.runs}

    def _todo(self) -> list[Pending]:
        """Stored decisions not carried out yet (the resume planner), each with its run."""
        return translate.with_runs(
            wiring.pending_for(self.study, self._checkpoints(), self.caps), self._new_run)

    def _new_run(self, sid: int, config: Mapping[str, Any], model: str, phase: Phase) -> int:
        return self.study.add_run(sid, config, model, phase)

    # ---- ask ---------------------------------------------------------------------------------
    def ask(self) -> Trial | None:
        """The next trial, or None; ``status`` says why (``WAITING``: tell running trials
        first; ``DONE``: the study is over)."""
        self.status = AskStatus.WAITING
        if self._running() >= self.workers:
            return None
        st = self.study
        if st.phase is Phase.CONFIRM and not self._planned:
            self._begin_confirmation()  # the same plan again: adds only what is missing
        todo = self._todo()
        if todo and todo[0].phase is Phase.SEARCH:
            return self._hand_out(todo[0])  # asked before a crash, never told
        if st.phase is Phase.SEARCH:
            trial = self._ask_search()
            if trial is not None or self._running():
                return trial
            self._begin_confirmation()
            todo = self._todo()
        return self._ask_confirm(todo)

    def _ask_search(self) -> Trial | None:
        view = self.view()
        s = self.optimizer.suggest(view)
        if s is None or not view.ledger.can_pay(suggestion_cost(view, s)):
            return None
        pending = translate.store_suggestion(self.study, view, s, self.caps, self._checkpoints(),
                                             self._new_run)
        return self._hand_out(pending[0])

    def _begin_confirmation(self) -> None:
        """Plan the confirmation (the tuner's planner, from what is recorded) and store
        its decisions."""
        st = self.study
        self._planned = True
        if st.phase is not Phase.CONFIRM:
            st.set_phase(Phase.CONFIRM)
        if st.spec.confirm.top_k == 0:
            return
        self._queue_confirmation()

    def _queue_confirmation(self) -> bool:
        """Store the confirmation decisions the plan holds and the study lacks (the tuner's
        planner); its notes become the study's warnings. True when it stored any."""
        st = self.study
        items, notes = wiring.queue_confirmation(st, self.view(), self.optimizer,
                                                 self._recipe,  # type: ignore[arg-type]
                                                 st.wall_used())
        for warning, text in notes:
            if warning:
                st.warn(text)
        return bool(items)

    def _top_up(self) -> bool:
        """Once the planned confirmation runs are told, plan again with their measured cost
        (as the tuner does): True when that stored more. Asked once per finished confirmation
        run."""
        st = self.study
        done = sum(1 for s in st.segments.values()
                   if st.runs[s.run_id].phase is Phase.CONFIRM
                   and s.status in (SegmentStatus.COMPLETED, SegmentStatus.FAILED))
        if st.spec.confirm.top_k == 0 or done == self._topped_at:
            return False
        self._topped_at = done
        return self._queue_confirmation()

    def _ask_confirm(self, todo: list[Pending]) -> Trial | None:
        st = self.study
        if not todo and not self._running() and self._top_up():
            todo = self._todo()
        if todo:
            p = todo[0]
            assert p.run_id is not None
            view = self.view()
            if view.ledger.can_pay(view.cost.between(st.runs[p.run_id].model, p.start, p.target)):
                return self._hand_out(p)
            if not self._running():
                st.warn(f"confirmation run {p.run_id} not started: the budget cannot pay for it")
        self.status = AskStatus.WAITING if self._running() else AskStatus.DONE
        return None

    def _hand_out(self, p: Pending) -> Trial:
        st = self.study
        assert p.run_id is not None
        run = st.runs[p.run_id]
        seg = st.add_segment(p.run_id, p.suggestion_id, p.start, p.target)
        st.update_segment(seg, status=int(SegmentStatus.RUNNING), started=st.now())
        self.status = AskStatus.TRIAL
        return Trial(seg, p.run_id, dict(run.config), run.model, p.start, p.target,
                     phase=p.phase, seed=run.seed, study=str(st.folder.resolve()))

    def _check_tell(self, trial: Trial, score: float | None, cost: float, failed: bool) -> None:
        """Refuse a tell that would record something false (see TrialError)."""
        from jfhpo.yaml_load import excerpt

        if not isinstance(trial, Trial):
            raise TrialError(f"tell() needs a Trial from ask(), got {excerpt(trial, 80)}")
        here = str(self.study.folder.resolve())
        if trial.study and trial.study != here:
            raise TrialError(f"trial {trial.trial_id} was asked by another study ({trial.study}), "
                             f"not this one ({here})")
        seg = self.study.segments.get(trial.trial_id)
        if seg is None:
            raise TrialError(f"trial {trial.trial_id} is unknown to this study (never asked)")
        if (seg.run_id, seg.start_step, seg.target_step) != (
                trial.run_id, trial.start_step, trial.steps):
            raise TrialError(f"trial {trial.trial_id} does not match what this study asked "
                             "(run, start or steps differ): it comes from another study")
        if seg.status is not SegmentStatus.RUNNING:
            raise TrialError(f"trial {trial.trial_id} was already told "
                             f"({seg.status.name.lower()}); each trial is told once")
        if isinstance(cost, bool) or not isinstance(cost, numbers.Real) or not math.isfinite(cost) \
                or cost < 0:
            raise TrialError(f"cost must be a finite number >= 0 (the budget's unit), got "
                             f"{excerpt(cost)}")
        if not failed and cost <= 0:
            raise TrialError("cost must be > 0 for a completed trial (a free trial would let the "
                             "budget never run out)")
        if not failed and score is not None and (
                isinstance(score, bool) or not isinstance(score, numbers.Real)
                or not math.isfinite(score)):
            raise TrialError(f"score must be a finite number, got {excerpt(score)}; report a "
                             "trial that produced no usable score with failed=True")

    # ---- tell --------------------------------------------------------------------------------
    def tell(self, trial: Trial, score: float | None, cost: float,
             curve: Sequence[tuple[int, float]] | None = None, failed: bool = False) -> None:
        """Report a trial's final score (at ``trial.steps``), its cost (in the budget's unit),
        and optionally its learning curve as (step, score) pairs; ``failed=True`` when it could
        not be scored (a failed confirmation trial is handed out again, at most twice)."""
        self._check_tell(trial, score, cost, failed)
        st = self.study
        if failed or score is None:
            st.update_segment(trial.trial_id, status=int(SegmentStatus.FAILED), cost=float(cost),
                              error="reported failed by the caller", finished=st.now())
        else:
            points = {int(s): float(v) for s, v in (curve or [])
                      if trial.start_step < s < trial.steps
                      and isinstance(v, numbers.Real) and math.isfinite(v)}
            points[trial.steps] = float(score)
            for step in sorted(points):
                st.add_observation(trial.trial_id, step, {st.objective: points[step]})
            st.update_segment(trial.trial_id, status=int(SegmentStatus.COMPLETED),
                              end_step=trial.steps, score=float(score), cost=float(cost),
                              finished=st.now())
        st.refresh_transfer()

    # ---- answers -----------------------------------------------------------------------------
    def best(self) -> dict[str, Any] | None:
        """The study's answer as ``jfhpo best --json`` gives it (see ``recommend``)."""
        return self.study.best()

    def recommend(self) -> Recommendation | None:
        """The study's current answer: once a configuration has a score on the target at the
        full step budget, the tuner's answer (the best confirmed run, never worse than the best
        full-budget target score seen); before that, the optimizer's top-ranked configuration
        with its predicted target score (from its surrogate, when it has one). None before any
        trial was told."""
        st = self.study
        best = st.best()
        if best is None:
            return None
        target, full = st.ladder.target.name, st.steps.max_steps
        if best["model"] == target and best["steps"] >= full:
            return Recommendation(best["config"], target, best["steps"], best["run_id"], True,
                                  best["score"], None, None, best["how"])
        view = self.view()
        search = tuple(r for r in view.runs if r.phase is Phase.SEARCH)
        ranked = list(self.optimizer.confirm(dataclasses.replace(view, runs=search), 1))
        if not ranked:
            return Recommendation(best["config"], best["model"], best["steps"], best["run_id"],
                                  False, None, None, None, best["how"])
        cfg = ranked[0]
        key = st.space.key(cfg)
        mine = [r for r in view.runs if st.space.key(r.config) == key and r.score is not None]
        where = max(mine, key=lambda r: (st.ladder.index(r.model), r.steps_done), default=None)
        predict = getattr(self.optimizer, "predict", None)
        pred = predict(view, [cfg]) if callable(predict) else None
        mean, std = (st.sign * pred[0][0], pred[0][1]) if pred else (None, None)
        how = ("the optimizer's top-ranked configuration, not yet trained on the target "
               f"{target} at {full} steps"
               + ("; its score there is the surrogate's prediction" if pred else ""))
        return Recommendation(dict(cfg), where.model if where else best["model"],
                              where.steps_done if where else best["steps"],
                              where.run_id if where else None, False, None, mean, std, how)

    def close(self) -> None:
        self.study.close()
        self._lock.release()
        if self._tmp is not None:
            self._tmp.cleanup()


def _lock(folder: str | Path) -> StudyLock:
    """Take the study's lock (one writer per study; released by ``close()`` or process exit)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return StudyLock(folder).acquire()
