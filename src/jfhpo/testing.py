"""Conformance kits: run them against your own optimizer or backend class.

    from jfhpo.testing import check_optimizer, check_backend

    def test_my_optimizer():
        check_optimizer(lambda: MyOptimizer({"some": "option"}))

    def test_my_backend(tmp_path):
        check_backend(MyBackend({"model_path": ...}), ladder, config, tmp_path)

Each kit drives the class the way the engine does and raises ``AssertionError`` with a sentence
naming the broken promise. They need no GPU and no trainer beyond the class itself: the optimizer
kit scores suggestions with the synthetic curves; the backend kit runs the backend's own segments.
jfhpo's own optimizers and the synthetic backend pass them (tests/test_testing.py).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jfhpo.backends.base import Backend, SegmentOutcome, SegmentTask
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.optimizers.base import Optimizer
from jfhpo.records import Extend, Start, Verdict

__all__ = ["check_backend", "check_optimizer"]

MODELS = [{"name": "50k", "params": 5e4, "cost": 1.0}, {"name": "4m", "params": 4e6, "cost": 10.0}]


def _check_suggestion(view: Any, s: Any, who: str) -> None:
    if isinstance(s, Start):
        assert s.model in view.ladder, f"{who}: Start on unknown model {s.model!r}"
        assert 1 <= int(s.steps) <= view.steps.max_steps, f"{who}: Start with {s.steps} steps"
        view.space.validate(s.config)  # raises on a configuration outside the space
    elif isinstance(s, Extend):
        run = view.run(s.run_id)
        assert not run.busy, f"{who}: Extend of run {s.run_id}, which is busy"
        assert run.stopped is None, f"{who}: Extend of run {s.run_id}, which a rule stopped"
        assert not run.failed, f"{who}: Extend of run {s.run_id}, which failed"
        assert run.steps_done < int(s.steps) <= view.steps.max_steps, (
            f"{who}: Extend of run {s.run_id} from {run.steps_done} to {s.steps} steps")
    else:
        raise AssertionError(f"{who}: suggest() returned {s!r}, not Start, Extend or None")


def check_optimizer(factory: Callable[[], Optimizer], *, budget: float = 150.0,
                    max_trials: int = 40, seed: int = 0) -> int:
    """Drive ``factory()`` through ask/tell on the synthetic curves (a 50k proxy and a 4m
    target, 10 to 90 steps) and check the optimizer contract:

    * every suggestion is a valid ``Start`` or ``Extend`` (known model, steps within the budget,
      a configuration inside the space, an extension of a run that can grow);
    * decisions are pure functions of the view: a fresh instance asked about the same view gives
      the same suggestion;
    * ``may_extend`` answers a bool for every run; ``confirm(view, k)`` gives at most ``k``
      configurations of the space.

    Returns the number of trials told.
    """
    from jfhpo.api import AskTell
    from jfhpo.backends.synthetic import SyntheticProblem, example_space

    problem = SyntheticProblem()
    opt = factory()
    who = type(opt).__name__
    at = AskTell(example_space(), MODELS, {"min": 10, "max": 90}, optimizer=opt, budget=budget,
                 seed=seed)
    told = 0
    try:
        while told < max_trials:
            view = at.view()
            s = factory().suggest(view)
            if s is not None:
                _check_suggestion(view, s, who)
                again = factory().suggest(view)
                assert again == s, f"{who}: the same view gave {s!r}, then {again!r}"
            t = at.ask()
            if t is None:
                break
            params = 5e4 if t.model == "50k" else 4e6
            score, _, curve = problem.objective(t.config, params, t.steps, seed=t.run_id)
            at.tell(t, score, problem.cost(1.0 if t.model == "50k" else 10.0,
                                           t.steps - t.start_step), curve)
            told += 1
        assert told > 0, f"{who}: suggested nothing at all"
        view = at.view()
        for r in view.runs:
            assert isinstance(opt.may_extend(view, r), bool), f"{who}: may_extend is not a bool"
        for k in (1, 3):
            picks = list(opt.confirm(view, k))
            assert len(picks) <= k, f"{who}: confirm(view, {k}) gave {len(picks)}"
            for c in picks:
                view.space.validate(c)
    finally:
        at.close()
    return told


def _run(backend: Backend, task: SegmentTask,
         stop_at: int | None = None) -> tuple[dict[int, dict[str, float]], SegmentOutcome]:
    seen: dict[int, dict[str, float]] = {}
    last = [task.start_step]

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        assert step == last[0] + 1, f"report() for step {step} after step {last[0]}"
        last[0] = step
        for k, v in metrics.items():
            assert isinstance(k, str) and isinstance(v, int | float), f"metric {k}={v!r}"
        seen[step] = dict(metrics)
        return Verdict.STOP if stop_at is not None and step >= stop_at else Verdict.CONTINUE

    return seen, backend.run_segment(task, report)


def check_backend(backend: Backend, ladder: ModelLadder | ModelRung, config: Mapping[str, Any],
                  workdir: str | Path | None = None, *, steps: int = 6, exact: bool = True,
                  objective: str | None = None) -> None:
    """Run ``backend``'s segments the way the engine does and check the backend contract:

    * ``report`` is called once per step, in order, with numeric metrics; the segment ends at its
      target, with a finite cost and (when it says so) a checkpoint in ``checkpoint_dir`` of the
      step ``saved_step`` names; the objective (``objective`` or the backend's default) is
      reported at the last step;
    * a run cut in two segments (the second resuming the first's checkpoint) reports true step
      numbers and, with ``exact``, the same metrics as the unbroken run;
    * a stop request takes effect at once, or at the next save (``capabilities()``);
    * ``recipe()`` is a dict and ``effective_config`` lays the configuration over it.
    """
    rung = ladder.target if isinstance(ladder, ModelLadder) else ladder
    caps = backend.capabilities()
    k = caps.checkpoint_every
    if k > 0:
        steps = max(steps, 2 * k) // k * k
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="jfhpo-kit-"))
    name = type(backend).__name__
    metric = objective or backend.default_objective
    recipe = backend.recipe()
    assert isinstance(recipe, dict), f"{name}.recipe() is not a dict"
    eff = backend.effective_config(config)
    assert all(eff.get(key) == v for key, v in config.items()), (
        f"{name}.effective_config() does not keep the configuration's own values")

    def task(seg: int, start: int, target: int, resume: str | None) -> SegmentTask:
        folder = root / f"segment-{seg}"
        folder.mkdir(parents=True, exist_ok=True)
        return SegmentTask(run_id=1, segment_id=seg, config=dict(config), model=rung,
                           start_step=start, target_step=target, max_steps=steps, seed=7,
                           checkpoint_dir=str(folder), resume_from=resume,
                           resources=rung.resources)

    full, out = _run(backend, task(1, 0, steps, None))
    assert out.end_step == steps, f"{name}: a segment to step {steps} ended at {out.end_step}"
    assert math.isfinite(out.cost) and out.cost >= 0, f"{name}: cost {out.cost}"
    assert metric in {**full.get(steps, {}), **out.final_metrics}, (
        f"{name}: no {metric!r} reported at the last step")
    if out.saved_step is not None:
        assert any((root / "segment-1").iterdir()), f"{name}: said checkpoint, wrote nothing"
    if caps.resumable:
        half = k if k > 0 else steps // 2
        _, first = _run(backend, task(2, 0, half, None))
        assert first.saved_step == half, f"{name}: no checkpoint of step {half}"
        second, out2 = _run(backend, task(3, half, steps, str(root / "segment-2")))
        assert sorted(second) == list(range(half + 1, steps + 1)), (
            f"{name}: a resumed segment reported steps {sorted(second)}")
        assert out2.end_step == steps
        if exact:
            for st in second:
                assert second[st] == full[st], f"{name}: step {st} differs after a resume"
    stop_at = 1
    seen, out3 = _run(backend, task(4, 0, steps, None), stop_at=stop_at)
    latest = stop_at if k == 0 else math.ceil(stop_at / k) * k
    assert out3.end_step <= latest and max(seen) <= latest, (
        f"{name}: asked to stop at step {stop_at}, it went on to {out3.end_step}")
