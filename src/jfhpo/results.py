"""One typed results layer: what a study found, as frozen records that every reader shares.

``jfhpo status``, the HTML report (``jfhpo.report.html``) and the exports (``jfhpo.export``) all
read a study through ``study_results(study)``, so they cannot disagree about which run won, how
much each phase cost, why a run stopped or what the winner's effective configuration is.

Everything here is a pure function of the stored study: nothing is written, no process or clock
is touched, so a report can be regenerated while the study is still running.

Scores are in the objective's own units and direction (``mode`` says whether higher is better),
unlike ``StudyView`` whose scores are oriented so that higher is always better.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jfhpo.records import Phase, SegmentStatus
from jfhpo.study import Study
from jfhpo.transfer import config_curves

__all__ = [
    "BudgetSummary",
    "ConfirmationRow",
    "Outcome",
    "RunResult",
    "ScoreSummary",
    "SegmentResult",
    "StudyResults",
    "TracePoint",
    "TransferPair",
    "Winner",
    "effective_config",
    "study_results",
]


class Outcome(str, enum.Enum):
    """How a segment (or a run, by its last segment) ended."""

    FINISHED = "finished"  # reached its target step and was not continued
    EXTENDED = "extended"  # reached its target step and a later segment continued the run
    STOPPED = "stopped"  # a stopping rule ended it early (``stop_rule`` says which)
    FAILED = "failed"  # the trainer raised or the worker died
    RUNNING = "running"  # queued or running now
    INTERRUPTED = "interrupted"  # the study process died while it ran; re-run on resume


@dataclass(frozen=True)
class SegmentResult:
    """One segment: a mark on the fidelity map (model x steps)."""

    segment_id: int
    run_id: int
    model: str
    phase: Phase
    start_step: int
    end_step: int  # the step it reached (its start while it has not reported)
    target_step: int
    outcome: Outcome
    cost: float
    score: float | None  # the objective at ``end_step`` (objective's own direction)
    stop_rule: str | None = None
    stop_message: str | None = None
    error: str | None = None  # last line of the traceback of a failed segment
    finished_at: float | None = None  # UNIX time it ended (None while it runs)


@dataclass(frozen=True)
class RunResult:
    """One run (a configuration on a model) with its learning curve and how it ended."""

    run_id: int
    model: str
    phase: Phase
    config: Mapping[str, Any]
    effective_config: Mapping[str, Any]
    steps_done: int
    score: float | None
    cost: float
    state: str  # status of its last segment: queued, running, completed, stopped, failed, ...
    outcome: Outcome
    stop_rule: str | None = None
    stop_message: str | None = None
    error: str | None = None
    curve: tuple[tuple[int, float], ...] = ()  # (step, objective) in the objective's direction


@dataclass(frozen=True)
class TracePoint:
    """A scored segment's end, in the order segments finished: the best-so-far trace."""

    spent: float  # compute-seconds spent by all finished segments up to this one
    model: str
    run_id: int
    steps: int
    score: float
    best: float  # best score on ``model`` so far (objective's direction)


@dataclass(frozen=True)
class TransferPair:
    """Rank agreement of a smaller model with a larger one, with the points it was measured on."""

    small: str
    large: str
    spearman: float | None  # None while too few configurations were scored on both models
    kendall: float | None
    n_configs: int
    n_pairs: int
    points: tuple[tuple[float, float], ...]  # (score on small, score on large) per configuration


@dataclass(frozen=True)
class BudgetSummary:
    total: float
    measure: str  # "compute" or "wall"
    spent_compute: float
    wall_used: float
    confirm_fraction: float
    by_phase: Mapping[str, float]  # compute-seconds of finished segments per phase
    interrupted: float  # compute-seconds of segments lost to a dead study process

    @property
    def spent(self) -> float:
        """What the budget has spent, in its own measure: compute-seconds of finished segments
        (``compute``) or the study's wall-clock seconds (``wall``), as the budget ledger counts."""
        return self.wall_used if self.measure == "wall" else self.spent_compute


@dataclass(frozen=True)
class ConfirmationRow:
    """A configuration trained on the target in the confirmation stage."""

    run_id: int
    config: Mapping[str, Any]
    target_score: float
    target_rank: int
    search_rank: int | None  # the optimizer's ranking before confirmation (None: the recipe)
    recipe: bool


@dataclass(frozen=True)
class ScoreSummary:
    """A configuration's score on the target with its spread, for the winner-vs-recipe line.

    ``spread`` is the standard deviation over repeated confirmation runs when there are several,
    else over the last evaluations of the single run's curve (``spread_kind`` says which); None
    when neither exists.
    """

    label: str
    config: Mapping[str, Any]
    score: float
    n_runs: int
    spread: float | None
    spread_kind: str


@dataclass(frozen=True)
class Winner:
    """The study's answer, as ``Study.best`` chooses it, with its effective configuration."""

    run_id: int
    model: str
    steps: int
    score: float
    objective: str
    how: str
    target: str
    stopped: bool
    config: Mapping[str, Any]
    effective_config: Mapping[str, Any]
    recipe_score: float | None


@dataclass(frozen=True)
class StudyResults:
    """Everything a reader of a study needs, computed once."""

    name: str
    folder: str
    phase: Phase
    objective: str
    mode: str  # "max" or "min"
    backend: str
    target: str
    models: tuple[str, ...]  # ladder order, smallest first
    model_params: Mapping[str, float]
    max_steps: int
    space: tuple[str, ...]
    fixed: Mapping[str, Any]
    budget: BudgetSummary
    segment_counts: Mapping[str, int]
    runs: tuple[RunResult, ...]
    segments: tuple[SegmentResult, ...]
    trace: tuple[TracePoint, ...]
    transfer: tuple[TransferPair, ...]
    confirmation: tuple[ConfirmationRow, ...]
    versus: tuple[ScoreSummary, ...]  # the winner and the recipe on the target
    winner: Winner | None
    recipe: Mapping[str, Any] | None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def run(self, run_id: int) -> RunResult:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is better than ``b`` under the objective's mode."""
        return a > b if self.mode == "max" else a < b


_FINAL = (SegmentStatus.COMPLETED, SegmentStatus.STOPPED, SegmentStatus.FAILED)


def _stored_effective(study: Study) -> dict[int, dict[str, Any]]:
    """Effective configurations the engine stored per run (a ``runs.effective_config`` column),
    when this study has them."""
    out: dict[int, dict[str, Any]] = {}
    for row in study.storage.rows("runs"):
        if "effective_config" in row.keys() and row["effective_config"]:  # noqa: SIM118
            value = study.storage.loads(row["effective_config"])
            if isinstance(value, dict):
                out[int(row["id"])] = value
    return out


def _composer(study: Study) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A function config -> effective configuration, asking the study's backend once (on the
    first call: studies that stored every run's effective configuration never load it)."""
    made: list[Callable[[Mapping[str, Any]], dict[str, Any]]] = []

    def compose(merged: Mapping[str, Any]) -> dict[str, Any]:
        if not made:
            made.append(_load_composer(study))
        return made[0](merged)

    return compose


def _load_composer(study: Study) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    try:
        from jfhpo.backends.base import get_backend

        backend = get_backend(study.spec.backend.name)(study.spec.backend.options)
        compose = getattr(backend, "effective_config", None)
        if callable(compose):
            return lambda merged: dict(compose(merged))
        recipe = dict(backend.recipe())
    except Exception:  # a user's backend that is not importable here: use what was stored
        recipe = study.recipe() or {}
    return lambda merged: {**recipe, **merged}


def effective_config(study: Study, config: Mapping[str, Any]) -> dict[str, Any]:
    """What the trainer runs for ``config``: the backend's recipe, then the study's ``fixed``
    keys, then the searched ones. Asks the backend (``effective_config`` when it has one, else
    its recipe); falls back to the recipe stored in the study when the backend cannot load."""
    return _composer(study)({**study.spec.fixed, **dict(config)})


def _last_line(text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    return text.strip().splitlines()[-1]


def _segments(study: Study) -> tuple[SegmentResult, ...]:
    finished_at = {int(r["id"]): r["finished"] for r in study.storage.rows("segments")}
    segs = sorted(study.segments.values(), key=lambda s: s.segment_id)
    last_live: dict[int, int] = {}  # run -> its last segment that was not interrupted
    for s in segs:
        if s.status is not SegmentStatus.INTERRUPTED:
            last_live[s.run_id] = s.segment_id
    out = []
    for s in segs:
        later = last_live.get(s.run_id, -1) > s.segment_id
        end = s.end_step
        if end is None:  # still running: the last step it reported
            end = max((o.step for o in study.obs.get(s.run_id, ())
                       if o.segment_id == s.segment_id), default=s.start_step)
        if s.status is SegmentStatus.COMPLETED:
            outcome = Outcome.EXTENDED if later else Outcome.FINISHED
        elif s.status is SegmentStatus.STOPPED:
            outcome = Outcome.STOPPED
        elif s.status is SegmentStatus.FAILED:
            outcome = Outcome.FAILED
        elif s.status is SegmentStatus.INTERRUPTED:
            outcome = Outcome.INTERRUPTED
        else:
            outcome = Outcome.RUNNING
        run = study.runs[s.run_id]
        out.append(SegmentResult(
            segment_id=s.segment_id, run_id=s.run_id, model=run.model, phase=run.phase,
            start_step=s.start_step, end_step=end,
            target_step=s.target_step, outcome=outcome, cost=float(s.cost or 0.0), score=s.score,
            stop_rule=s.reason.rule if s.reason else None,
            stop_message=s.reason.message if s.reason else None,
            error=_last_line(s.error), finished_at=finished_at.get(s.segment_id)))
    return tuple(out)


def _runs(study: Study, segments: tuple[SegmentResult, ...]) -> tuple[RunResult, ...]:
    stored = _stored_effective(study)
    compose = _composer(study)
    out = []
    for rid in sorted(study.runs):
        r = study.run_record(rid)
        mine = [s for s in segments if s.run_id == rid]
        last = mine[-1] if mine else None
        state = "queued"
        if last is not None:
            state = study.segments[last.segment_id].status.name.lower()
        if r.failed:
            outcome = Outcome.FAILED
        elif r.stopped is not None:
            outcome = Outcome.STOPPED
        elif r.busy or last is None:
            outcome = Outcome.RUNNING
        elif last.outcome is Outcome.INTERRUPTED:
            outcome = Outcome.INTERRUPTED
        else:
            outcome = Outcome.FINISHED
        failed_seg = next((s for s in reversed(mine) if s.error), None)
        eff = stored.get(rid) or compose({**study.spec.fixed, **dict(r.config)})
        out.append(RunResult(
            run_id=rid, model=r.model, phase=r.phase, config=MappingProxyType(dict(r.config)),
            effective_config=MappingProxyType(eff), steps_done=r.steps_done,
            score=None if r.score is None else study.sign * r.score, cost=r.cost, state=state,
            outcome=outcome, stop_rule=r.stopped.rule if r.stopped else None,
            stop_message=r.stopped.message if r.stopped else None,
            error=failed_seg.error if failed_seg and r.failed else None,
            curve=tuple((s, study.sign * v) for s, v in r.curve)))
    return tuple(out)


def _trace(study: Study, segments: tuple[SegmentResult, ...]) -> tuple[TracePoint, ...]:
    done = [s for s in segments if s.outcome in
            (Outcome.FINISHED, Outcome.EXTENDED, Outcome.STOPPED, Outcome.FAILED)]
    done.sort(key=lambda s: (s.finished_at if s.finished_at is not None else math.inf,
                             s.segment_id))
    spent = 0.0
    best: dict[str, float] = {}
    out = []
    for s in done:
        spent += s.cost
        if s.score is None or not math.isfinite(s.score) or s.outcome is Outcome.FAILED:
            continue
        prev = best.get(s.model)
        if prev is None or study.sign * s.score > study.sign * prev:
            best[s.model] = s.score
        out.append(TracePoint(spent=spent, model=s.model, run_id=s.run_id, steps=s.end_step,
                              score=s.score, best=best[s.model]))
    return tuple(out)


def _value_at(curve: Mapping[int, float], step: int) -> float:
    """The last value at or before ``step`` (the first one if none is earlier)."""
    earlier = [s for s in curve if s <= step]
    return curve[max(earlier)] if earlier else curve[min(curve)]


def _transfer(study: Study) -> tuple[TransferPair, ...]:
    """Every model pair with a configuration scored on both, with the points (the same rule as
    ``jfhpo.transfer``: both curves read at the largest step both models reached) and the stored
    Spearman and Kendall figures where the study measured them."""
    curves = config_curves([study.run_record(r) for r in sorted(study.runs)], study.space)
    stored = {(t.small, t.large): t for t in study.transfer}
    names = study.ladder.names
    out = []
    for i, small in enumerate(names):
        for large in names[i + 1:]:
            a, b = curves.get(small, {}), curves.get(large, {})
            common = sorted(set(a) & set(b))
            if not common:
                continue
            pts = []
            for key in common:
                shared = min(max(a[key]), max(b[key]))
                pts.append((study.sign * _value_at(a[key], shared),
                            study.sign * _value_at(b[key], shared)))
            t = stored.get((small, large))
            n = len(common)
            out.append(TransferPair(small, large, t.spearman if t else None,
                                    t.kendall if t else None, n, n * (n - 1) // 2, tuple(pts)))
    return tuple(out)


def _confirmation(study: Study, runs: tuple[RunResult, ...]) -> tuple[ConfirmationRow, ...]:
    confirmed = [r for r in runs if r.phase is Phase.CONFIRM and r.score is not None]
    if not confirmed:
        return ()
    recipe = study.recipe()
    rkey = None if recipe is None else study.space.key(recipe)

    def is_recipe(r: RunResult) -> bool:
        return rkey is not None and study.space.key(r.config) == rkey

    order = sorted(confirmed, key=lambda r: r.score or 0.0, reverse=study.sign > 0)
    # confirmation runs are planned (and numbered) in the optimizer's ranking from the search
    planned = [r.run_id for r in sorted(confirmed, key=lambda r: r.run_id) if not is_recipe(r)]
    return tuple(
        ConfirmationRow(run_id=r.run_id, config=r.config, target_score=float(r.score or 0.0),
                        target_rank=rank,
                        search_rank=planned.index(r.run_id) + 1 if r.run_id in planned else None,
                        recipe=is_recipe(r))
        for rank, r in enumerate(order, 1))


def _score_summary(study: Study, label: str, runs: list[RunResult]) -> ScoreSummary | None:
    scored = [r for r in runs if r.score is not None]
    if not scored:
        return None
    scores = [float(r.score) for r in scored if r.score is not None]
    mean = statistics.fmean(scores)
    if len(scores) >= 2:
        return ScoreSummary(label, scored[0].config, mean, len(scores), statistics.stdev(scores),
                            f"standard deviation over {len(scores)} runs on the target")
    tail = [v for s, v in scored[0].curve if s > scored[0].steps_done / 2][-3:]
    if len(tail) >= 2:
        return ScoreSummary(label, scored[0].config, mean, 1, statistics.stdev(tail),
                            f"standard deviation of the run's last {len(tail)} evaluations")
    return ScoreSummary(label, scored[0].config, mean, 1, None,
                        "one evaluation: no spread measured")


def _versus(study: Study, runs: tuple[RunResult, ...], winner: Winner | None
            ) -> tuple[ScoreSummary, ...]:
    target = study.ladder.target.name
    if winner is None or winner.model != target:
        return ()  # the answer was never trained on the target: nothing to set beside the recipe
    # every full-budget target run of a configuration counts (the winner may be a search run
    # on the target that scored above its own confirmation run: both are measurements of it)
    on_target = [r for r in runs if r.model == target and r.steps_done == winner.steps]
    out = []
    wkey = study.space.key(winner.config)
    recipe = study.recipe()
    rkey = None if recipe is None else study.space.key(recipe)
    label = "winner (the recipe itself)" if wkey == rkey else "winner"
    best = _score_summary(study, label,
                          [r for r in on_target if study.space.key(r.config) == wkey])
    if best is not None:
        out.append(best)
    if rkey is not None and rkey != wkey:
        rec = _score_summary(study, "recipe",
                             [r for r in on_target if study.space.key(r.config) == rkey])
        if rec is not None:
            out.append(rec)
    return tuple(out)


def study_results(study: Study, wall_used: float | None = None) -> StudyResults:
    """Read everything a report needs from ``study`` (nothing is written). ``wall_used``: the
    live wall clock of the tuner that runs the study (its progress view); default the stored
    one, which the tuner updates after every segment."""
    spec = study.spec
    segments = _segments(study)
    runs = _runs(study, segments)
    by_phase = {p.value: 0.0 for p in Phase}
    interrupted = 0.0
    for s in study.segments.values():
        cost = float(s.cost or 0.0)
        if s.status in _FINAL:
            by_phase[study.runs[s.run_id].phase.value] += cost
        elif s.status is SegmentStatus.INTERRUPTED:
            interrupted += cost
    budget = BudgetSummary(
        total=spec.budget.seconds, measure=spec.budget.measure,
        spent_compute=study.budget_spent(),
        wall_used=study.wall_used() if wall_used is None else float(wall_used),
        confirm_fraction=spec.confirm.fraction,
        by_phase=MappingProxyType(by_phase), interrupted=interrupted)
    counts = {st.name.lower(): sum(1 for s in study.segments.values() if s.status is st)
              for st in SegmentStatus}
    best = study.best()
    winner = None
    if best is not None:
        wrun = next(r for r in runs if r.run_id == best["run_id"])
        winner = Winner(
            run_id=best["run_id"], model=best["model"], steps=best["steps"], score=best["score"],
            objective=best["objective"], how=best["how"], target=best["target"],
            stopped=best["stopped"], config=MappingProxyType(dict(best["config"])),
            effective_config=wrun.effective_config, recipe_score=best["recipe_score"])
    recipe = study.recipe()
    return StudyResults(
        name=spec.name, folder=str(study.folder), phase=study.phase, objective=study.objective,
        mode=spec.objective.mode, backend=spec.backend.name, target=study.ladder.target.name,
        models=tuple(study.ladder.names),
        model_params=MappingProxyType({r.name: r.params for r in study.ladder.rungs}),
        max_steps=study.steps.max_steps,
        space=tuple(study.space.names), fixed=MappingProxyType(dict(spec.fixed)),
        budget=budget, segment_counts=MappingProxyType(counts), runs=runs, segments=segments,
        trace=_trace(study, segments), transfer=_transfer(study),
        confirmation=_confirmation(study, runs), versus=_versus(study, runs, winner),
        winner=winner, recipe=None if recipe is None else MappingProxyType(recipe),
        warnings=tuple(study.warnings))
