"""The replay backend: recorded real GRPO learning curves served through the whole engine.

A recording (``bench/replay/record.py``) holds full training curves of the tiny GRPO workload
over a fixed design of configurations, on every rung of a model ladder, with every step's
canonical metrics, evaluations every few steps and the CPU seconds of every step. This backend
serves those curves as if it trained them:

* a suggested configuration (recipe, then fixed keys, then searched keys) maps to the nearest
  recorded configuration in the unit cube of the recording's search space (jfhpo's own
  ``SearchSpace`` encoding, log scale where declared; values outside a recorded range clip to it);
* ``run_segment`` reports the recorded metrics of each step from ``start_step + 1`` on, so stopping
  rules see the recorded curve step by step, and stops when the engine says STOP;
* a segment that resumes a checkpoint continues the recorded curve where it left off (the
  checkpoint names the recorded run and its step);
* the cost is simulated, never slept: by default the recorded CPU seconds of the segment's steps
  plus the run's recorded fixed overhead (trainer construction, model load, checkpoint write) once
  per segment, as a resumed real segment pays it again. ``cost: scaled`` instead prices a step at
  ``target_step_seconds * (params / target_params) ** cost_power``: the *assumption* that a step's
  cost grows as a power of the parameter count (power 1: FLOPs per token proportional to
  parameters, as on a GPU ladder large enough to be compute-bound), which CPU timings of tiny
  models do not show (there fixed per-step work dominates).

Evaluation metrics exist only at the recorded evaluation steps (every 10 steps, and the last). A
segment end or a stop at another step reports the most recent recorded evaluation at or before it
(the first recorded one before any), so an evaluation is never invented, only held.

The optimizer sees the seed-0 curves (option ``seed``: ``0`` by default, or ``run`` to serve the
recorded training seed ``task.seed mod n`` on rungs recorded with several seeds). Benchmarks
compute regret against the mean over the recorded seeds (``Recording.target_score``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from jfhpo.backends.base import (
    Backend,
    BackendError,
    Reporter,
    SegmentOutcome,
    SegmentTask,
    check_option_keys,
    register_backend,
)
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.records import Verdict
from jfhpo.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace

#: backend options a study may set under ``backend.options``
OPTIONS: dict[str, str] = {
    "recording": "path of a recording (.jsonl or .jsonl.gz); default: the packaged tiny recording",
    "seed": "recorded training seed served: 0 (default) or 'run' (task seed mod recorded seeds)",
    "cost": "'measured' (recorded CPU seconds, default) or 'scaled' (params ** cost_power)",
    "cost_power": "scaled cost: exponent of the parameter count (default 1.0; an assumption)",
    "target_step_seconds": "scaled cost: seconds per target step (default: measured mean)",
    "segment_overhead": "scaled cost: seconds every segment pays once (default 0)",
}
PACKAGED = "tiny.jsonl.gz"
STATE_FILE = "replay_state.json"


def packaged_recording() -> str:
    """Path of the recording shipped with jfhpo (package data)."""
    return str(resources.files("jfhpo.data.replay").joinpath(PACKAGED))


def _num(v: Any) -> float:
    """A journal metric value: numbers as they are; 'nan'/'inf'/'-inf' strings as floats."""
    return float(v)


@dataclass(frozen=True)
class RecordedRun:
    """One recorded run: per-step metrics, per-step CPU seconds and the fixed overhead."""

    config_id: int
    model: str
    seed: int
    steps: tuple[int, ...]
    metrics: tuple[Mapping[str, float], ...]  # canonical + extra training metrics of each step
    evals: tuple[tuple[int, Mapping[str, float]], ...]  # (step, eval_* metrics) as recorded
    step_cpu: tuple[float, ...]  # CPU seconds of each training step (without setup or evaluation)
    overhead: float  # CPU seconds a segment pays once (trainer construction, model load, save)
    eval_cost: float  # CPU seconds of one evaluation (500 problems, sampled and greedy)

    def metrics_at(self, step: int) -> Mapping[str, float]:
        return self.metrics[self.steps.index(step)]

    def eval_at(self, step: int) -> Mapping[str, float]:
        """The recorded evaluation at ``step``, else the latest before it, else the first one."""
        chosen = self.evals[0][1] if self.evals else {}
        for s, ev in self.evals:
            if s > step:
                break
            chosen = ev
        return chosen

    def cpu(self, start: int, end: int) -> float:
        """Recorded CPU seconds of steps start+1..end."""
        return float(sum(c for s, c in zip(self.steps, self.step_cpu) if start < s <= end))

    @property
    def last_step(self) -> int:
        return self.steps[-1] if self.steps else 0


def _param_from_spec(name: str, p: Mapping[str, Any]) -> Param:
    kind = p.get("type", "float")
    if kind == "float":
        return FloatParam(name, float(p["low"]), float(p["high"]), bool(p.get("log", False)))
    if kind == "int":
        return IntParam(name, int(p["low"]), int(p["high"]), bool(p.get("log", False)))
    return CategoricalParam(name, tuple(p["choices"]))


class Recording:
    """A recording loaded into memory: its design, rungs and runs, with pure lookups.

    Benchmarks call it directly (no processes); the backend serves it through the engine.
    """

    def __init__(self, header: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], path: str = ""):
        self.path = path
        self.header = dict(header)
        self.space = SearchSpace([_param_from_spec(n, p) for n, p in header["space"].items()])
        self.configs: list[dict[str, Any]] = [dict(c) for c in header["configs"]]
        self.rung_params: dict[str, float] = {k: float(v) for k, v in header["rungs"].items()}
        self.max_steps = int(header["steps"])
        self.eval_every = int(header["eval_every"])
        self.backend_options = dict(header.get("backend_options", {}))
        self.runs: dict[tuple[int, str, int], RecordedRun] = {}
        self.failed: list[tuple[int, str, int]] = []
        for r in runs:
            key = (int(r["config_id"]), str(r["model"]), int(r["seed"]))
            if r.get("error") or not r.get("curve"):
                self.failed.append(key)
                continue
            self.runs[key] = _parse_run(key, r)
        # configurations served: seed 0 recorded on every rung
        self.complete: list[int] = [
            i for i in range(len(self.configs))
            if all((i, m, 0) in self.runs for m in self.rung_params)
        ]
        if not self.complete:
            raise BackendError(f"recording {path or '(given)'}: no configuration is recorded on every rung")
        self._encoded = np.array([self.space.encode(self.configs[i]) for i in self.complete])

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str) -> Recording:
        """Read a recording file (JSON lines, optionally gzip): the last ``session`` line is the
        header, ``run`` lines are runs (the last line of a key wins)."""
        opener = gzip.open if path.endswith(".gz") else open
        header: dict[str, Any] | None = None
        runs: dict[tuple[int, str, int], dict[str, Any]] = {}
        try:
            with opener(path, "rt") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn last line of a killed recorder
                    if rec.get("kind") == "session":
                        header = rec
                    elif rec.get("kind") == "run":
                        runs[(rec["config_id"], rec["model"], rec["seed"])] = rec
        except OSError as e:
            raise BackendError(f"backend.options.recording: cannot read {path}: {e}") from e
        if header is None:
            raise BackendError(f"backend.options.recording: {path} has no header (a 'session' line)")
        return cls(header, list(runs.values()), path)

    # ---- lookups ---------------------------------------------------------------------------
    def seeds(self, model: str, config_id: int | None = None) -> list[int]:
        """Training seeds recorded on ``model`` (for one configuration, or any)."""
        return sorted({s for (c, m, s) in self.runs if m == model and config_id in (None, c)})

    def nearest(self, config: Mapping[str, Any]) -> int:
        """Index of the recorded configuration nearest to ``config`` in the encoded space;
        ``config`` must give every searched name of the recording (values clip to its ranges)."""
        u = np.array([min(max(p.encode(config[p.name]), 0.0), 1.0) for p in self.space.params])
        d = np.sum((self._encoded - u) ** 2, axis=1)
        return self.complete[int(np.argmin(d))]

    def run(self, config_id: int, model: str, seed: int = 0) -> RecordedRun:
        try:
            return self.runs[(config_id, model, seed)]
        except KeyError:
            raise BackendError(
                f"recording has no run of configuration {config_id} on {model} with seed {seed}"
            ) from None

    def score(self, config_id: int, model: str, steps: int, seed: int = 0,
              metric: str = "eval_accuracy") -> float:
        """The evaluation ``metric`` of one recorded run after ``steps`` steps (held as above)."""
        return float(self.run(config_id, model, seed).eval_at(steps).get(metric, math.nan))

    def target_score(self, config_id: int, model: str | None = None, steps: int | None = None,
                     metric: str = "eval_accuracy") -> float:
        """Mean over the recorded training seeds: the "true" score regret is measured against."""
        model = model or self.target
        steps = self.max_steps if steps is None else steps
        vals = [self.score(config_id, model, steps, s, metric) for s in self.seeds(model, config_id)]
        return float(np.mean(vals))

    @property
    def target(self) -> str:
        return max(self.rung_params, key=lambda m: self.rung_params[m])

    def mean_step_cpu(self, model: str) -> float:
        """Mean recorded CPU seconds per step on ``model`` over all runs."""
        vals = [c for (_, m, _), r in self.runs.items() if m == model for c in r.step_cpu]
        return float(np.mean(vals)) if vals else math.nan

    def mean_overhead(self, model: str) -> float:
        vals = [r.overhead for (_, m, _), r in self.runs.items() if m == model]
        return float(np.mean(vals)) if vals else 0.0


def _parse_run(key: tuple[int, str, int], r: Mapping[str, Any]) -> RecordedRun:
    steps: list[int] = []
    metrics: list[dict[str, float]] = []
    evals: list[tuple[int, dict[str, float]]] = []
    cpu: list[float] = []
    for row in r["curve"]:
        m = {k: _num(v) for k, v in row["metrics"].items()}
        ev = {k: v for k, v in m.items() if k.startswith("eval_")}
        steps.append(int(row["step"]))
        metrics.append({k: v for k, v in m.items() if not k.startswith("eval_")})
        cpu.append(float(row.get("cpu", row.get("seconds", 0.0))))
        if ev:
            evals.append((int(row["step"]), ev))
    final = {k: _num(v) for k, v in (r.get("final_metrics") or {}).items() if k.startswith("eval_")}
    end = int(r.get("end_step", steps[-1] if steps else 0))
    if final and (not evals or evals[-1][0] != end):
        evals.append((end, final))
    # The recorder timed each step from the previous report, so step 1 also holds the trainer's
    # construction and model load, and evaluation steps hold the evaluation. Split them off: a
    # plain step costs what it cost; step 1 and evaluation steps cost the median plain step, the
    # rest is the segment's setup and the evaluation's cost (both charged where they happen).
    eval_steps = {s for s, _ in evals}
    plain = [c for s, c in zip(steps, cpu) if s != 1 and s not in eval_steps]
    typical = float(np.median(plain)) if plain else (float(np.median(cpu)) if cpu else 0.0)
    setup = 0.0
    extra: list[float] = []
    train: list[float] = []
    for s, c in zip(steps, cpu):
        if s == 1 or s in eval_steps:
            if s == 1:
                setup += max(c - typical, 0.0)
            else:
                extra.append(max(c - typical, 0.0))
            train.append(min(c, typical))
        else:
            train.append(c)
    total = float(r.get("cpu_seconds") or sum(cpu))
    setup += max(total - sum(cpu), 0.0)  # after the last report: the checkpoint write
    return RecordedRun(key[0], key[1], key[2], tuple(steps), tuple(metrics), tuple(evals),
                       tuple(train), setup, float(np.mean(extra)) if extra else 0.0)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> Recording:
    return Recording.load(path)


def load_recording(path: str | None = None) -> Recording:
    """A recording by path (default: the packaged one), read once per process."""
    p = os.path.abspath(path) if path else packaged_recording()
    try:
        mtime = os.path.getmtime(p)
    except OSError as e:
        raise BackendError(f"backend.options.recording: cannot read {p}: {e}") from e
    return _load_cached(p, mtime)


@register_backend
class ReplayBackend(Backend):
    """Recorded tiny-workload GRPO curves, served in simulated time (see the module docstring)."""

    name: ClassVar[str] = "replay"
    default_objective: ClassVar[str] = "eval_accuracy"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        check_option_keys(self.options, OPTIONS, "replay")
        seed = self.options.get("seed", 0)
        if seed != "run" and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise BackendError(f"backend.options.seed: must be a recorded seed (>= 0) or 'run', got {seed!r}")
        cost = self.options.get("cost", "measured")
        if cost not in ("measured", "scaled"):
            raise BackendError(f"backend.options.cost: must be 'measured' or 'scaled', got {cost!r}")
        for key in ("cost_power", "target_step_seconds", "segment_overhead"):
            v = self.options.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v < 0):
                raise BackendError(f"backend.options.{key}: must be a number >= 0, got {v!r}")
        path = self.options.get("recording")
        if path is not None and not isinstance(path, str):
            raise BackendError(f"backend.options.recording: must be a file path, got {path!r}")
        self._path = path

    @property
    def recording(self) -> Recording:
        return load_recording(self._path)

    # ---- mapping ---------------------------------------------------------------------------
    def recorded_rung(self, rung: ModelRung) -> str:
        """The recorded rung a study's model stands for: ``build.size``, else its name."""
        name = str(rung.build.get("size", rung.name)) if rung.build else rung.name
        if name not in self.recording.rung_params:
            raise BackendError(
                f"models.{rung.name}: the recording has no rung '{name}'; recorded rungs: "
                f"{list(self.recording.rung_params)} (name the model so, or set build: {{size: ...}})"
            )
        return name

    def config_id(self, config: Mapping[str, Any]) -> int:
        """The recorded configuration nearest to ``config`` (filled from the recipe first)."""
        rec = self.recording
        recipe = self.recipe()
        for k, v in config.items():
            if k not in rec.space.names and v != recipe.get(k, v):
                raise BackendError(
                    f"config key '{k}' = {v!r}: the recording does not vary '{k}' (it kept the "
                    f"recipe's {recipe.get(k)!r}); recorded names: {rec.space.names}"
                )
        full = {**recipe, **config}
        return rec.nearest(full)

    def served_seed(self, task_seed: int, model: str, config_id: int) -> int:
        seeds = self.recording.seeds(model, config_id)
        opt = self.options.get("seed", 0)
        if opt == "run":
            return seeds[task_seed % len(seeds)]
        if opt not in seeds:
            raise BackendError(f"backend.options.seed: {opt} is not recorded on {model} (seeds {seeds})")
        return int(opt)

    def segment_cost(self, run: RecordedRun, start: int, end: int, evals: int = 1) -> float:
        """Simulated seconds of steps start+1..end of ``run`` as one segment that evaluated
        ``evals`` times."""
        if end <= start:
            return 0.0
        rec = self.recording
        if self.options.get("cost", "measured") == "measured":
            return run.cpu(start, end) + run.overhead + evals * run.eval_cost
        target = rec.target
        per_target = float(self.options.get("target_step_seconds") or rec.mean_step_cpu(target))
        power = float(self.options.get("cost_power", 1.0))
        per_step = per_target * (rec.rung_params[run.model] / rec.rung_params[target]) ** power
        return per_step * (end - start) + float(self.options.get("segment_overhead", 0.0))

    # ---- Backend contract ------------------------------------------------------------------
    def validate(self, space: SearchSpace, ladder: ModelLadder) -> None:
        rec = self.recording
        extra = [n for n in space.names if n not in rec.space.names]
        if extra:
            raise BackendError(
                f"space: parameter(s) {extra} are not varied in the recording; "
                f"recorded names: {rec.space.names}"
            )
        for rung in ladder.rungs:
            self.recorded_rung(rung)

    def run_segment(self, task: SegmentTask, report: Reporter) -> SegmentOutcome:
        rec = self.recording
        if task.max_steps > rec.max_steps:
            raise BackendError(
                f"steps.max: {task.max_steps} is beyond the recording's {rec.max_steps} steps"
            )
        model = self.recorded_rung(task.model)
        cid, seed = self._restore(task, model)
        run = rec.run(cid, model, seed)
        step = task.start_step
        evaluated = False
        n_evals = 0
        for step in range(task.start_step + 1, task.target_step + 1):
            metrics = dict(run.metrics_at(step))
            evaluated = step == task.target_step or bool(task.eval_every and step % task.eval_every == 0)
            if evaluated:
                metrics.update(run.eval_at(step))
                n_evals += 1
            if report(step, metrics) is Verdict.STOP:
                break
        final = {} if evaluated or step == task.start_step else dict(run.eval_at(step))
        n_evals += 1 if final else 0
        os.makedirs(task.checkpoint_dir, exist_ok=True)
        with open(os.path.join(task.checkpoint_dir, STATE_FILE), "w") as f:
            json.dump({"run_id": task.run_id, "step": step, "config_id": cid, "model": model,
                       "seed": seed}, f)
        cost = self.segment_cost(run, task.start_step, step, n_evals)
        return SegmentOutcome(end_step=step, cost=cost,
                              checkpoint=True, final_metrics=final)

    def _restore(self, task: SegmentTask, model: str) -> tuple[int, int]:
        """(config id, seed) of the recorded run: from the checkpoint when resuming (so an
        extension continues the same recorded curve), else from the configuration."""
        if task.resume_from is None:
            if task.start_step != 0:
                raise BackendError(f"segment starts at step {task.start_step} without a checkpoint")
            cid = self.config_id(task.config)
            return cid, self.served_seed(task.seed, model, cid)
        try:
            with open(os.path.join(task.resume_from, STATE_FILE)) as f:
                state = json.load(f)
        except (OSError, ValueError) as e:
            raise BackendError(f"resume_from {task.resume_from}: not a replay checkpoint ({e})") from e
        if state["step"] != task.start_step or state["model"] != model:
            raise BackendError(
                f"checkpoint {task.resume_from} holds {state['model']} step {state['step']}, "
                f"not {model} step {task.start_step}"
            )
        return int(state["config_id"]), int(state["seed"])

    @classmethod
    def recipe(cls) -> dict[str, Any]:
        """The tiny workload's recipe: the recording kept every unsearched key at it."""
        from jfhpo.backends.tiny.hparams import RECIPE

        return dict(RECIPE)

    @classmethod
    def example_study(cls) -> str:
        """An example study over the packaged recording; cost hints and the budget come from it."""
        rec = load_recording(None)
        rungs = sorted(rec.rung_params, key=lambda m: rec.rung_params[m])
        base = rec.mean_step_cpu(rungs[0])
        lines = [
            f"  - {{name: {m}, params: {int(rec.rung_params[m])}, "
            f"cost: {rec.mean_step_cpu(m) / base:.2f}}}"
            for m in rungs
        ]
        target = rungs[-1]
        full = rec.mean_step_cpu(target) * rec.max_steps + rec.mean_overhead(target)
        space = []
        for p in rec.space.params:
            if isinstance(p, FloatParam):
                log = ", log: true" if p.log else ""
                space.append(f"  {p.name}: {{type: float, low: {_yaml_float(p.low)}, "
                             f"high: {_yaml_float(p.high)}{log}}}")
            elif isinstance(p, IntParam):
                log = ", log: true" if p.log else ""
                space.append(f"  {p.name}: {{type: int, low: {p.low}, high: {p.high}{log}}}")
            else:
                space.append(f"  {p.name}: {{type: categorical, choices: {list(p.choices)}}}")
        return _EXAMPLE.format(
            n=len(rec.complete), steps=rec.max_steps, models="\n".join(lines),
            space="\n".join(space), budget=round(5 * full), full=full,
        )


def _yaml_float(x: float) -> str:
    """A float YAML reads back as a float (YAML 1.1 wants a dot in '3.0e-06', not '3e-06')."""
    text = repr(float(x))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


_EXAMPLE = """\
# jfhpo study on the replay backend: real GRPO learning curves of the tiny workload, recorded
# once ({n} configurations x 4 model sizes x {steps} steps) and served in simulated time, so the
# study takes seconds. A configuration maps to the nearest recorded one.
name: replay-demo
seed: 0
backend:
  name: replay
  options:
    cost: measured        # recorded CPU seconds; 'scaled' prices a step as params ** cost_power
objective: {{metric: eval_accuracy, mode: max}}
models:                   # the recorded ladder; cost: measured CPU seconds per step relative to 50k
{models}
steps: {{min: 10, max: {steps}, eta: 3}}
eval_every: 10
space:                    # the recorded design's names and ranges
{space}
# in simulated time the optimizer's own decisions are the study's cost (a proxy segment takes
# milliseconds): the benchmark suite's lighter surrogate settings keep the study within seconds
optimizer: {{name: jfhpo, options: {{n_candidates: 96, fit_maxiter: 12, max_points: 100}}}}
stopping: {{}}              # the default early-stopping rules, on the recorded metrics
budget: {{seconds: {budget}}}     # simulated CPU seconds: about 5 full target runs ({full:.0f} s each)
workers: 2
confirm: {{top_k: 2, fraction: 0.35}}   # the top configurations and the recipe on the target
"""
