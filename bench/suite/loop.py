"""A sequential ask/tell loop over a suite problem, with the engine's stopping rules.

The loop does what the tuner does with one worker, in simulated time: it rebuilds a ``StudyView``
from ``RunRecord``s before every decision, runs the suggested segment step by step, checks the
stopping rules after every step (with the view of the study as it stood when the segment began,
which with one worker is the view the tuner would show), charges the segment's simulated cost, and
records after every decision what the method would recommend (``Optimizer.confirm(view, 1)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from problems import EVAL_EVERY, Problem

from jfhpo.optimizers.base import Optimizer
from jfhpo.records import Extend, Observation, Phase, RunRecord, Start
from jfhpo.stopping.base import RunHistory, StoppingRule
from jfhpo.transfer import measure_transfer
from jfhpo.view import StudyView

#: the objective's metric name on every problem (the name the default stopping rules watch)
OBJECTIVE = "eval_accuracy"
#: the run key of a recommendation's confirmation run (its own noise draw; no search run has it)
CONFIRM_RUN = 1_000_003


def full_run_end_score(p: Problem, config: Mapping[str, Any], run_key: int) -> float:
    """What ``Study.best`` ranks a fresh full-budget target run of ``config`` by (its
    ``RunRecord.end_score``), from the evaluations such a run would have every ``EVAL_EVERY``
    steps; ``run_key`` picks its noise draw."""
    target, full = p.ladder.target.name, p.steps.max_steps
    steps = sorted({*range(EVAL_EVERY, full + 1, EVAL_EVERY), full})
    curve = tuple((s, p.evaluate(config, target, run_key, s)) for s in steps)
    rec = RunRecord(run_key, config, target, Phase.CONFIRM, steps_done=full, score=curve[-1][1],
                    curve=curve)
    return float(rec.end_score() or 0.0)


@dataclass
class Point:
    """The state after one decision: compute spent so far and the recommendation then."""

    spent: float
    config: Mapping[str, Any] | None
    on_target: bool  # the recommendation already has a full-budget target run


@dataclass
class Loop:
    problem: Problem
    optimizer: Optimizer
    seed: int
    budget: float
    rules: StoppingRule | None = None
    reuse: bool = True
    runs: list[RunRecord] = field(default_factory=list)
    obs: dict[int, list[Observation]] = field(default_factory=dict)
    costs: list[tuple[str, int, float]] = field(default_factory=list)
    spent: float = 0.0
    n: int = 0
    n_segments: int = 0

    def view(self) -> StudyView:
        p = self.problem
        return StudyView(
            space=p.space, ladder=p.ladder, steps=p.steps, seed=self.seed, objective=OBJECTIVE,
            runs=tuple(self.runs), observations={k: tuple(v) for k, v in self.obs.items()},
            budget_total=self.budget, budget_spent=self.spent, n_suggestions=self.n,
            transfer=measure_transfer(self.runs, p.ladder, p.space),
            segment_costs=tuple(self.costs), recipe=dict(p.recipe),
        )

    def step(self) -> bool:
        """One decision and its (instant) execution; False when nothing more will happen."""
        if self.spent >= self.budget:
            return False
        view = self.view()
        sug = self.optimizer.suggest(view)
        self.n += 1
        if sug is None:
            return False
        p = self.problem
        if isinstance(sug, Start):
            rid, config, model, start = len(self.runs), dict(sug.config), sug.model, 0
            old_cost, curve = 0.0, []
        else:
            assert isinstance(sug, Extend)
            old = self.runs[sug.run_id]
            rid, config, model, start = old.run_id, dict(old.config), old.model, old.steps_done
            old_cost, curve = old.cost, list(old.curve)
        target = int(sug.steps)
        seg = self.n_segments
        self.n_segments += 1
        series = self.obs.setdefault(rid, [])
        stopped = None
        end, evals = start, 0
        for step in range(start + 1, target + 1):
            metrics = p.metrics(config, model, rid, step)
            if step == target or step % EVAL_EVERY == 0:
                score = p.evaluate(config, model, rid, step)
                metrics[OBJECTIVE] = score
                curve.append((step, score))
                evals += 1
            series.append(Observation(rid, seg, step, metrics))
            end = step
            if self.rules is not None:
                hist = RunHistory(rid, model, config, tuple(series), target, p.steps.max_steps)
                stopped = self.rules.check(hist, view)
                if stopped is not None:
                    break
        if not curve or curve[-1][0] != end:
            score = p.evaluate(config, model, rid, end)  # a stopped segment ends with an evaluation
            curve.append((end, score))
            series.append(Observation(rid, seg, end, {OBJECTIVE: score}))
            evals += 1
        cost = p.cost(config, model, start if self.reuse else 0, end, evals)
        rec = RunRecord(rid, config, model, Phase.SEARCH, steps_done=end, score=curve[-1][1],
                        cost=old_cost + cost, stopped=stopped, curve=tuple(curve), checkpoint_step=end)
        if rid == len(self.runs):
            self.runs.append(rec)
        else:
            self.runs[rid] = replace(rec)
        self.costs.append((model, end - start, cost))
        self.spent += cost
        return True

    def snapshot(self) -> Snapshot:
        return Snapshot(self.spent, tuple(self.runs), self.n, tuple(self.costs))


@dataclass(frozen=True)
class Snapshot:
    """The study after one decision (run records are immutable, so this is a cheap copy)."""

    spent: float
    runs: tuple[RunRecord, ...]
    n: int
    costs: tuple[tuple[str, int, float], ...] = ()


class Trajectory:
    """One method's decisions on one problem, with its recommendation after any of them computed
    on demand (``confirm`` may fit a surrogate: only the decisions a budget needs are asked)."""

    def __init__(self, problem: Problem, optimizer: Optimizer | None, seed: int,
                 snapshots: list[Snapshot], fixed: list[Point] | None = None,
                 budget: float = math.inf) -> None:
        self.problem, self.optimizer, self.seed, self.budget = problem, optimizer, seed, budget
        self.snapshots = snapshots
        self._points: dict[int, Point] = dict(enumerate(fixed)) if fixed is not None else {}
        self.n = len(fixed) if fixed is not None else len(snapshots)

    def spent(self, i: int) -> float:
        return self._points[i].spent if not self.snapshots else self.snapshots[i].spent

    def point(self, i: int) -> Point:
        if i not in self._points:
            snap, p = self.snapshots[i], self.problem
            if not snap.runs or self.optimizer is None:
                self._points[i] = Point(snap.spent, None, False)
                return self._points[i]
            view = StudyView(space=p.space, ladder=p.ladder, steps=p.steps, seed=self.seed,
                             objective=OBJECTIVE, runs=snap.runs, n_suggestions=snap.n,
                             transfer=measure_transfer(snap.runs, p.ladder, p.space),
                             segment_costs=snap.costs, recipe=dict(p.recipe),
                             budget_total=self.budget, budget_spent=snap.spent)
            rec = self.optimizer.confirm(view, 1)
            if not rec:
                self._points[i] = Point(snap.spent, None, False)
                return self._points[i]
            cfg = dict(rec[0])
            key = p.space.key(cfg)
            target, full = p.ladder.target.name, p.steps.max_steps
            on_target = any(r.model == target and r.steps_done >= full and p.space.key(r.config) == key
                            for r in snap.runs)
            self._points[i] = Point(snap.spent, cfg, on_target)
        return self._points[i]

    def result_at(self, budget: float) -> tuple[float, float]:
        """(truth of the answer, compute used) at ``budget`` seconds, everything counted: the
        latest decision whose search spend plus the confirmation run of its recommendation (one
        full target run, unless the recommendation already has one) fits in the budget. With
        none, the method falls back to training the recipe once on the target."""
        p = self.problem
        for i in reversed(range(self.n)):
            if self.spent(i) > budget:
                continue
            pt = self.point(i)
            if pt.config is None:
                continue
            confirm = 0.0 if pt.on_target else p.target_run_cost(pt.config)
            if pt.spent + confirm <= budget:
                return p.truth(self._answer(i, pt)), pt.spent + confirm
        return p.truth(p.recipe), p.target_run_cost(p.recipe)

    def _answer(self, i: int, pt: Point) -> Mapping[str, Any]:
        """What a study reports after decision ``i`` (``Study.best``): of the full-budget runs
        on the target, the search's own and the recommendation's confirmation run, the one
        with the best mean of its last evaluations (``RunRecord.end_score``). Its truth is
        what the method is judged by."""
        assert pt.config is not None
        if not self.snapshots:
            return pt.config
        p = self.problem
        target, full = p.ladder.target.name, p.steps.max_steps
        runs = [r for r in self.snapshots[i].runs if r.model == target and r.steps_done >= full
                and r.score is not None and not r.failed]
        scored: list[tuple[float, Mapping[str, Any]]] = [(float(r.end_score() or 0.0), r.config)
                                                         for r in runs]
        if not pt.on_target:  # its confirmation run: a fresh run on the target
            scored.append((full_run_end_score(p, pt.config, CONFIRM_RUN), pt.config))
        return max(scored, key=lambda sc: sc[0])[1] if scored else pt.config


def trajectory(problem: Problem, optimizer: Optimizer, seed: int, budget: float,
               rules: StoppingRule | None, reuse: bool, max_decisions: int) -> Trajectory:
    """Run a method until ``budget`` seconds are spent (or it stops)."""
    loop = Loop(problem, optimizer, seed, budget, rules, reuse)
    snaps = [loop.snapshot()]
    while loop.n < max_decisions and loop.step():
        snaps.append(loop.snapshot())
    return Trajectory(problem, optimizer, seed, snaps, budget=budget)
