"""Peer HPO libraries driven through their own ask/tell APIs, as jfhpo optimizers (baselines).

Every adapter maps the peer's single budget onto RL steps of ONE model (by default the target) and
runs through jfhpo's engine, executor, stopping rules and budget accounting, like any optimizer:

* ``optuna_tpe_hyperband``: Optuna's TPE sampler with its ``HyperbandPruner`` (the "BOHB-like"
  setup of Optuna's docs);
* ``optuna_asha``: Optuna's ``RandomSampler`` with its ``SuccessiveHalvingPruner`` (asynchronous
  successive halving, i.e. ASHA: random configurations, rung-based pruning);
* ``smac_mf``: SMAC3's ``MultiFidelityFacade`` (random forest + Hyperband intensifier);
* ``dehb``: DEHB (differential evolution + Hyperband).

How budgets become steps. Optuna trials report their objective at the study's step rungs
(``steps.rungs()``): a trial is started to the first rung; at each rung it reports and asks its
pruner; a pruned trial stops there, a continuing one becomes an ``Extend`` of its run to the next
rung (so it resumes its checkpoint, as an in-process Optuna trial would simply keep training).
SMAC3 and DEHB ask for (configuration, budget) pairs with budgets between the first rung and the
full step budget; the budget is rounded to whole steps. When a configuration they ask for already
has an idle run on the model that is shorter than the budget, the adapter extends that run
(checkpoint reuse, which jfhpo gives every method alike); otherwise it starts a new run.

Statelessness: an exception to the optimizer contract, on purpose. These libraries keep their
state in live objects (SMAC3's intensifier and DEHB refuse results they did not hand out; DEHB says
"warm-starting with tell is not supported"; Optuna's pruning decisions depend on the order in
which rung results arrived, which the view does not record). Each adapter therefore keeps the
peer's object in memory for the lifetime of the optimizer instance (one study run) and feeds it
every result it has not seen yet, read from the view, before each decision. Runs that existed when
the instance was created (a resumed study) are ignored by the peer, which starts afresh: **these
adapters do not survive a crash with their search state**; the resumed study keeps every earlier
run, which still counts for the final choice. Randomness comes from the study's seed.

The peers are optional dependencies (``pip install jfhpo[bench]``), imported only when an adapter
is built.
"""

from __future__ import annotations

import abc
import math
import tempfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jfhpo.optimizers.base import Optimizer, OptimizerError, register_optimizer
from jfhpo.records import Extend, Phase, RunRecord, Start, Suggestion
from jfhpo.space import CategoricalParam, FloatParam, IntParam, SearchSpace
from jfhpo.view import StudyView

__all__ = ["DEHBAdapter", "OptunaASHA", "OptunaTPEHyperband", "PeerAdapter", "SMACMultiFidelity"]


def _missing(package: str) -> OptimizerError:
    return OptimizerError(f"this optimizer needs the peer library '{package}'; "
                          "install jfhpo[bench] (pip install 'jfhpo[bench]')")


def _native(value: Any) -> Any:
    """Plain Python scalars (numpy scalars from the peers would not validate or serialise)."""
    if hasattr(value, "item"):
        return value.item()
    return value


@dataclass
class _Pending:
    """A Start handed to the tuner whose run id is not known yet."""

    key: str
    job: Any
    steps: int


class PeerAdapter(Optimizer, abc.ABC):
    """Shared bookkeeping: map runs to peer jobs, feed new results, translate asks to suggestions.

    Options: ``model`` (default: the target). Subclasses implement ``_create``, ``_ask`` (one new
    job as (configuration, steps, job)), and ``_result`` (tell the peer what a run reached; return
    steps to extend the run to, or None).
    """

    peer_options: frozenset[str] = frozenset()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        valid = {"model", *self.peer_options}
        bad = set(self.options) - valid
        if bad:
            raise OptimizerError(f"optimizer.options: unknown key(s) {sorted(bad)} for "
                                 f"{self.name}; valid: {sorted(valid)}")
        self._peer: Any = None
        self._ignored: set[int] = set()
        self._pending: deque[_Pending] = deque()
        self._jobs: dict[int, Any] = {}  # run_id -> the peer job it is running
        self._targets: dict[int, int] = {}  # run_id -> steps its current job asked for
        self._closed: set[int] = set()  # runs the peer is done with
        self._extends: deque[tuple[int, int]] = deque()
        self._max_run = -1

    # ---- subclass hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def _create(self, view: StudyView) -> Any:
        """Build the peer's optimizer object for this study."""

    @abc.abstractmethod
    def _ask(self, view: StudyView) -> tuple[dict[str, Any], int, Any]:
        """One new job: (configuration, steps to train to, the peer's handle)."""

    @abc.abstractmethod
    def _result(self, view: StudyView, run: RunRecord, job: Any) -> int | None:
        """Tell the peer what ``run`` reached for ``job``; return the steps to extend it to
        (the job continues) or None (the peer is done with this run for now)."""

    # ---- shared logic -------------------------------------------------------------------------
    def _steps(self, view: StudyView, budget: float) -> int:
        return int(min(max(round(float(budget)), 1), view.steps.max_steps))

    def _sync(self, view: StudyView) -> None:
        """Match new runs to pending starts, then feed every unseen result to the peer."""
        for r in sorted(view.runs, key=lambda r: r.run_id):
            if r.run_id <= self._max_run:
                continue
            self._max_run = r.run_id
            if r.phase is not Phase.SEARCH or r.run_id in self._ignored:
                continue
            key = view.space.key(r.config)
            match = next((p for p in self._pending if p.key == key), None)
            if match is None:
                self._ignored.add(r.run_id)
                continue
            self._pending.remove(match)
            self._jobs[r.run_id] = match.job
            self._targets[r.run_id] = match.steps
        for run_id, job in list(self._jobs.items()):
            r = view.run(run_id)
            if r.busy:
                continue
            done = (r.steps_done >= self._targets[run_id] or r.stopped is not None or r.failed)
            if not done:
                continue
            del self._jobs[run_id]
            nxt = self._result(view, r, job)
            if nxt is None or r.stopped is not None or r.failed or nxt <= r.steps_done:
                self._closed.add(run_id)
            else:
                self._jobs[run_id] = job
                self._targets[run_id] = nxt
                self._extends.append((run_id, nxt))

    def _launch(self, view: StudyView, config: dict[str, Any], steps: int, job: Any) -> Suggestion:
        """Extend an idle run of the same configuration when one is shorter than ``steps``."""
        model = self._model(view)
        key = view.space.key(config)
        for r in view.runs:
            if (r.model == model and r.phase is Phase.SEARCH and not r.busy and not r.failed
                    and r.stopped is None and r.steps_done < steps and r.run_id not in self._jobs
                    and r.run_id not in self._ignored and view.space.key(r.config) == key):
                self._jobs[r.run_id] = job
                self._targets[r.run_id] = steps
                self._closed.discard(r.run_id)
                return Extend(r.run_id, steps)
        self._pending.append(_Pending(key, job, steps))
        return Start(config, model, steps)

    def suggest(self, view: StudyView) -> Suggestion | None:
        self._model(view)
        if self._peer is None:
            self._ignored = {r.run_id for r in view.runs}
            self._max_run = max(self._ignored, default=-1)
            self._peer = self._create(view)
        self._sync(view)
        while self._extends:
            run_id, steps = self._extends.popleft()
            r = view.run(run_id)
            if not r.busy and r.stopped is None and not r.failed and steps > r.steps_done:
                return Extend(run_id, steps)
        config, steps, job = self._ask(view)
        config = view.space.validate({k: _native(v) for k, v in config.items()})
        return self._launch(view, config, steps, job)

    def may_extend(self, view: StudyView, run: RunRecord) -> bool:
        """Keep checkpoints of runs the peer may still continue (Optuna: trials not finished;
        SMAC3 and DEHB may promote any configuration later, so every unfinished run)."""
        if run.stopped is not None or run.failed or run.steps_done >= view.steps.max_steps:
            return False
        return run.run_id not in self._closed or not self.closes_runs

    #: True when a run the peer is done with can never be continued (Optuna's pruning is final)
    closes_runs: bool = False


# ---- Optuna -----------------------------------------------------------------------------------
class _OptunaBase(PeerAdapter):
    """Optuna trials, one per run: report at each step rung, ask the pruner, extend or prune."""

    closes_runs = True

    def _sampler(self, optuna: Any, seed: int) -> Any:
        raise NotImplementedError

    def _pruner(self, optuna: Any, view: StudyView) -> Any:
        raise NotImplementedError

    def _create(self, view: StudyView) -> Any:
        try:
            import optuna
        except ImportError:
            raise _missing("optuna") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._distributions = _optuna_space(optuna, view.space)
        self._reported: dict[int, set[int]] = {}
        # a fixed name: HyperbandPruner assigns trials to brackets by hashing the study's name
        return optuna.create_study(direction="maximize", sampler=self._sampler(optuna, view.seed),
                                   pruner=self._pruner(optuna, view),
                                   study_name=f"jfhpo-{self.name}-{view.seed}")

    def _ask(self, view: StudyView) -> tuple[dict[str, Any], int, Any]:
        trial = self._peer.ask(self._distributions)
        return dict(trial.params), view.steps.rungs()[0], trial

    def _result(self, view: StudyView, run: RunRecord, job: Any) -> int | None:
        import optuna

        curve = dict(run.curve)
        reported = self._reported.setdefault(job.number, set())
        for step in view.steps.rungs():
            if step <= run.steps_done and step in curve and step not in reported:
                job.report(curve[step], step)
                reported.add(step)
        if run.failed or run.score is None:
            self._peer.tell(job, state=optuna.trial.TrialState.FAIL)
            return None
        if run.stopped is not None:
            if run.steps_done not in reported and run.steps_done not in curve:
                job.report(run.score, run.steps_done)
            self._peer.tell(job, state=optuna.trial.TrialState.PRUNED)
            return None
        if run.steps_done >= view.steps.max_steps:
            self._peer.tell(job, run.score)
            return None
        if job.should_prune():
            self._peer.tell(job, state=optuna.trial.TrialState.PRUNED)
            return None
        return next(s for s in view.steps.rungs() if s > run.steps_done)


def _optuna_space(optuna: Any, space: SearchSpace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in space.params:
        if isinstance(p, FloatParam):
            out[p.name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, IntParam):
            out[p.name] = optuna.distributions.IntDistribution(p.low, p.high, log=p.log)
        else:
            out[p.name] = optuna.distributions.CategoricalDistribution(list(p.choices))
    return out


@register_optimizer
class OptunaTPEHyperband(_OptunaBase):
    """Optuna TPE + HyperbandPruner over the step rungs. Option ``eta`` (default: steps.eta)."""

    name = "optuna_tpe_hyperband"
    peer_options = frozenset({"eta"})

    def _sampler(self, optuna: Any, seed: int) -> Any:
        return optuna.samplers.TPESampler(seed=seed)

    def _pruner(self, optuna: Any, view: StudyView) -> Any:
        eta = int(self.options.get("eta", view.steps.eta))
        return optuna.pruners.HyperbandPruner(min_resource=view.steps.rungs()[0],
                                              max_resource=view.steps.max_steps,
                                              reduction_factor=eta)


@register_optimizer
class OptunaASHA(_OptunaBase):
    """Optuna RandomSampler + SuccessiveHalvingPruner (ASHA). Option ``eta``."""

    name = "optuna_asha"
    peer_options = frozenset({"eta"})

    def _sampler(self, optuna: Any, seed: int) -> Any:
        return optuna.samplers.RandomSampler(seed=seed)

    def _pruner(self, optuna: Any, view: StudyView) -> Any:
        eta = int(self.options.get("eta", view.steps.eta))
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=view.steps.rungs()[0],
                                                      reduction_factor=eta,
                                                      min_early_stopping_rate=0)


# ---- ConfigSpace (SMAC3, DEHB) ------------------------------------------------------------------
def _configspace(space: SearchSpace, seed: int) -> Any:
    try:
        import ConfigSpace as CS
    except ImportError:
        raise _missing("ConfigSpace") from None
    cs = CS.ConfigurationSpace(seed=seed)
    hps: list[Any] = []
    for p in space.params:
        if isinstance(p, FloatParam):
            hps.append(CS.Float(p.name, (p.low, p.high), log=p.log))
        elif isinstance(p, IntParam):
            hps.append(CS.Integer(p.name, (p.low, p.high), log=p.log))
        elif isinstance(p, CategoricalParam):
            hps.append(CS.Categorical(p.name, list(p.choices)))
    cs.add(hps)
    return cs


def _from_configspace(config: Any, space: SearchSpace) -> dict[str, Any]:
    values = dict(config)
    out: dict[str, Any] = {}
    for p in space.params:
        v = _native(values[p.name])
        if isinstance(p, CategoricalParam):
            v = next((c for c in p.choices if repr(c) == repr(v) or c == v), v)
        out[p.name] = v
    return out


@register_optimizer
class SMACMultiFidelity(PeerAdapter):
    """SMAC3's MultiFidelityFacade (random forest + Hyperband intensifier). Option ``eta``."""

    name = "smac_mf"
    peer_options = frozenset({"eta"})

    def _create(self, view: StudyView) -> Any:
        try:
            from smac import MultiFidelityFacade, Scenario
        except ImportError:
            raise _missing("smac") from None
        self._tmp = tempfile.TemporaryDirectory(prefix="jfhpo-smac-")
        scenario = Scenario(_configspace(view.space, view.seed), name="jfhpo",
                            output_directory=Path(self._tmp.name), deterministic=True,
                            n_trials=10**9, min_budget=view.steps.rungs()[0],
                            max_budget=view.steps.max_steps, seed=view.seed)
        eta = int(self.options.get("eta", view.steps.eta))
        intensifier = MultiFidelityFacade.get_intensifier(scenario, eta=eta)

        def never_called(config: Any, seed: int = 0, budget: float = 0.0) -> float:
            raise RuntimeError("jfhpo runs SMAC3 through ask/tell only")

        return MultiFidelityFacade(scenario, never_called, intensifier=intensifier,
                                   overwrite=True, logging_level=40)

    def _ask(self, view: StudyView) -> tuple[dict[str, Any], int, Any]:
        info = self._peer.ask()
        budget = info.budget if info.budget is not None else view.steps.max_steps
        return _from_configspace(info.config, view.space), self._steps(view, budget), info

    def _result(self, view: StudyView, run: RunRecord, job: Any) -> int | None:
        from smac.runhistory.dataclasses import TrialValue
        from smac.runhistory.enumerations import StatusType

        if run.failed or run.score is None:
            self._peer.tell(job, TrialValue(cost=math.inf, time=run.cost, status=StatusType.CRASHED))
        else:  # SMAC3 minimises cost; view scores are oriented higher-is-better
            self._peer.tell(job, TrialValue(cost=-float(run.score), time=run.cost))
        return None


@register_optimizer
class DEHBAdapter(PeerAdapter):
    """DEHB (differential evolution + Hyperband), sequential ask/tell. Option ``eta``."""

    name = "dehb"
    peer_options = frozenset({"eta"})

    def _create(self, view: StudyView) -> Any:
        try:
            from dehb import DEHB
        except ImportError:
            raise _missing("dehb") from None
        from loguru import logger

        logger.remove()  # DEHB logs every job to stderr through loguru
        self._tmp = tempfile.TemporaryDirectory(prefix="jfhpo-dehb-")
        cs = _configspace(view.space, view.seed)
        eta = int(self.options.get("eta", view.steps.eta))
        return DEHB(cs=cs, dimensions=len(view.space.params), min_fidelity=view.steps.rungs()[0],
                    max_fidelity=view.steps.max_steps, eta=eta, n_workers=1, seed=view.seed,
                    output_path=self._tmp.name, save_freq="end")

    def _ask(self, view: StudyView) -> tuple[dict[str, Any], int, Any]:
        job = self._peer.ask()
        return _from_configspace(job["config"], view.space), self._steps(view, job["fidelity"]), job

    def _result(self, view: StudyView, run: RunRecord, job: Any) -> int | None:
        # DEHB minimises fitness; a failed run gets the worst value it can compare
        fitness = 1e9 if run.failed or run.score is None else -float(run.score)
        self._peer.tell(job, {"fitness": fitness, "cost": float(run.cost)})
        return None
