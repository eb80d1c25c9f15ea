"""A synthetic backend with analytic learning curves, for fast tests and optimizer benchmarks.

It is a real backend: it runs in the worker, streams per-step metrics under the canonical names,
saves and resumes checkpoints (the noise generator's state and a running average live in the
checkpoint, so a resume that lost them would show), and honours stop requests. What it trains is a
formula, shaped after the behaviour measured on the tiny GRPO workload:

* every configuration has a peak score; the best learning rate moves with model size
  (``bias`` decades of learning rate per decade of parameters: the proxy bias);
* bigger models score higher and cost more per step;
* scores approach their peak with more steps, faster for larger learning rates;
* learning rates far above the size's optimum diverge: the KL runs away and the reward drops,
  or (further above) the reward collapses to zero;
* rewards and evaluations carry seeded noise.

``SyntheticProblem`` holds the formula as pure functions, so a benchmark can call the objective
without processes (``objective``) and compute true regret (``true_score``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from jfhpo.backends.base import (
    Backend,
    BackendError,
    Reporter,
    SegmentOutcome,
    SegmentTask,
    register_backend,
)
from jfhpo.fidelity import ModelLadder
from jfhpo.records import Verdict
from jfhpo.space import SearchSpace

#: configuration keys the synthetic curves understand, with the value used when a key is absent
DEFAULTS: Mapping[str, Any] = {
    "learning_rate": 3e-5,
    "beta": 0.001,
    "epsilon": 0.2,
    "num_generations": 8,
    "temperature": 1.0,
}


@dataclass(frozen=True)
class SyntheticProblem:
    """The analytic learning-curve family.

    ``bias``: decades the best learning rate moves down per decade of model parameters (0 means
    proxies rank configurations like the target). ``lr_opt_at_1m``: log10 of the best learning
    rate for a 1M-parameter model. ``noise``: standard deviation of evaluation noise.
    """

    bias: float = 0.5
    lr_opt_at_1m: float = -3.5
    noise: float = 0.02
    reward_noise: float = 0.05
    step_seconds: float = 0.1  # simulated seconds per step for a model of cost hint 1.0

    def lr_opt(self, params: float) -> float:
        """log10 of the best learning rate at ``params`` parameters."""
        return self.lr_opt_at_1m - self.bias * (math.log10(params) - 6.0)

    def _excess(self, config: Mapping[str, Any], params: float) -> float:
        return math.log10(float(config["learning_rate"])) - self.lr_opt(params)

    def peak(self, config: Mapping[str, Any], params: float) -> float:
        """The score the configuration converges to on a model of ``params`` parameters."""
        c = {**DEFAULTS, **config}
        size = math.log10(params)
        base = 0.55 + 0.06 * (size - 5.0)
        excess = self._excess(c, params)
        pen = (0.12 if excess > 0 else 0.05) * excess**2
        pen += 0.015 * (math.log10(float(c["beta"])) + 2.5) ** 2
        pen += 1.2 * (float(c["epsilon"]) - 0.25) ** 2
        pen += 0.4 * (float(c["temperature"]) - 1.0) ** 2
        pen -= {4: -0.03, 8: 0.0, 16: 0.01}.get(int(c["num_generations"]), 0.0)
        return float(min(max(base - pen, 0.02), 0.98))

    def start(self, params: float) -> float:
        """Score of the warm-started model before any RL step."""
        return 0.40 + 0.06 * (math.log10(params) - 5.0)

    def divergence_step(self, config: Mapping[str, Any], params: float) -> float | None:
        """The step at which a too-large learning rate breaks the run (None: it never does)."""
        excess = self._excess({**DEFAULTS, **config}, params)
        if excess <= 0.6:
            return None
        return 120.0 / (excess / 0.6) ** 2

    def true_score(self, config: Mapping[str, Any], params: float, steps: int) -> float:
        """Noise-free evaluation score after ``steps`` RL steps."""
        c = {**DEFAULTS, **config}
        lr_ratio = 10 ** self._excess(c, params)
        tau = 40.0 / min(max(lr_ratio, 0.05), 4.0) ** 0.5
        s0, peak = self.start(params), self.peak(c, params)
        score = s0 + (peak - s0) * (1.0 - math.exp(-steps / tau))
        t_div = self.divergence_step(c, params)
        if t_div is not None and steps > t_div:
            excess = self._excess(c, params)
            floor = 0.0 if excess > 1.0 else 0.3 * score
            frac = min((steps - t_div) / max(t_div * 0.5, 1.0), 1.0)
            score = score + (floor - score) * frac
        return float(score)

    def step_metrics(
        self, config: Mapping[str, Any], params: float, step: int, rng: np.random.Generator
    ) -> dict[str, float]:
        """The canonical training metrics of one step (draws from ``rng`` in a fixed order)."""
        c = {**DEFAULTS, **config}
        score = self.true_score(c, params, step)
        excess = self._excess(c, params)
        lr_ratio = 10**excess
        beta = float(c["beta"])
        kl = 0.002 * step * lr_ratio / (1.0 + 20.0 * beta)
        t_div = self.divergence_step(c, params)
        entropy = 0.9 * math.exp(-step * min(lr_ratio, 10.0) / 400.0)
        if t_div is not None and step > 0.5 * t_div:
            growth = (step - 0.5 * t_div) / max(0.1 * t_div, 1.0)
            kl *= math.exp(min(growth, 30.0))
            entropy *= 1.0 + 0.05 * min(growth, 40.0)
        noise = rng.normal(size=3)
        reward = min(max(score + self.reward_noise * noise[0], 0.0), 1.0)
        if score <= 0.0:
            reward = 0.0
        g = int(c["num_generations"])
        zero_std = score**g + (1.0 - score) ** g
        return {
            "reward": float(reward),
            "kl": float(kl),
            "entropy": float(entropy),
            "grad_norm": float(abs(0.5 * lr_ratio**0.5 * (1.0 + 0.2 * noise[1]))),
            "response_length": float(4.0 + 0.5 * noise[2]),
            "truncation": 0.0,
            "zero_std_frac": float(min(max(zero_std, 0.0), 1.0)),
            "clip_frac": 0.0,
            "lr": float(c["learning_rate"]),
            "loss": 0.0,
        }

    def eval_score(self, config: Mapping[str, Any], params: float, step: int, seed: int) -> float:
        """A noisy evaluation: deterministic in (seed, step), like an eval with a fixed seed."""
        rng = np.random.default_rng([seed, step, 7])
        return float(
            min(max(self.true_score(config, params, step) + self.noise * rng.normal(), 0.0), 1.0)
        )

    def cost(self, cost_hint: float, steps: int) -> float:
        """Simulated seconds for ``steps`` steps of a model with relative cost ``cost_hint``."""
        return float(cost_hint * self.step_seconds * steps)

    def objective(
        self, config: Mapping[str, Any], params: float, steps: int, seed: int, cost_hint: float = 1.0
    ) -> tuple[float, float, list[tuple[int, float]]]:
        """(score, cost, curve) for the ask/tell API and benchmarks, without any process."""
        every = max(steps // 5, 1)
        curve = [(s, self.eval_score(config, params, s, seed)) for s in range(every, steps, every)]
        score = self.eval_score(config, params, steps, seed)
        curve.append((steps, score))
        return score, self.cost(cost_hint, steps), curve


def example_space() -> dict[str, dict[str, Any]]:
    """The search space of the synthetic example study."""
    return {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "beta": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "epsilon": {"type": "float", "low": 0.1, "high": 0.4},
        "num_generations": {"type": "categorical", "choices": [4, 8, 16]},
    }


@register_backend
class SyntheticBackend(Backend):
    """Analytic learning curves run as a real backend (see the module docstring).

    Options: ``bias``, ``lr_opt_at_1m``, ``noise``, ``reward_noise``, ``step_seconds`` (the
    ``SyntheticProblem`` fields) and ``sleep`` (real seconds to sleep per step, to make segments
    take wall-clock time in crash and progress tests; default 0). ``record_env``: a folder where
    each segment appends one JSON line (segment, run, pid, ``CUDA_VISIBLE_DEVICES``, start and end
    times), so tests can see what an executor handed each segment. ``crash_marker``: a file path;
    with it, ``crash_at_step`` kills the worker only once (the file remembers it).
    """

    name = "synthetic"
    default_objective: ClassVar[str] = "eval_accuracy"
    _test_hooks: ClassVar[tuple[str, ...]] = ("sleep", "fail_at_step", "crash_at_step",
                                              "record_env", "crash_marker")
    _fields: ClassVar[tuple[str, ...]] = (
        "bias", "lr_opt_at_1m", "noise", "reward_noise", "step_seconds",
    )

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = set(self.options) - {*self._fields, *self._test_hooks}
        if unknown:
            raise BackendError(
                f"backend.options: unknown key(s) {sorted(unknown)} for the synthetic backend; "
                f"valid: {sorted([*self._fields, *self._test_hooks])}"
            )
        kwargs = {k: float(self.options[k]) for k in self._fields if k in self.options}
        self.problem = SyntheticProblem(**kwargs)
        self.sleep = float(self.options.get("sleep", 0.0))
        # fail_at_step: raise at that step (tests use it to exercise failure handling)
        self.fail_at_step = int(self.options.get("fail_at_step", -1))
        # crash_at_step: the worker process exits abruptly at that step (worker-death tests)
        self.crash_at_step = int(self.options.get("crash_at_step", -1))

    @classmethod
    def recipe(cls) -> dict[str, Any]:  # the same for every instance (callable on the class too)
        return dict(DEFAULTS)

    def validate(self, space: SearchSpace, ladder: ModelLadder) -> None:
        unknown = set(space.names) - set(DEFAULTS)
        if unknown:
            raise BackendError(
                f"space: parameter(s) {sorted(unknown)} mean nothing to the synthetic backend; "
                f"it understands {sorted(DEFAULTS)}"
            )

    def run_segment(self, task: SegmentTask, report: Reporter) -> SegmentOutcome:
        t0 = time.time()
        outcome = self._train(task, report)
        folder = self.options.get("record_env")
        if folder:
            line = {"segment": task.segment_id, "run": task.run_id, "pid": os.getpid(),
                    "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    "resources": dict(task.resources), "start": t0, "end": time.time()}
            os.makedirs(str(folder), exist_ok=True)
            with open(os.path.join(str(folder), f"env-{os.getpid()}.jsonl"), "a") as f:
                f.write(json.dumps(line) + "\n")
        return outcome

    def _train(self, task: SegmentTask, report: Reporter) -> SegmentOutcome:
        config = {**DEFAULTS, **task.config}
        params = task.model.params
        rng, avg = self._restore(task)
        step = task.start_step
        for step in range(task.start_step + 1, task.target_step + 1):
            if step == self.fail_at_step:
                raise RuntimeError(f"synthetic failure at step {step} (fail_at_step)")
            if step == self.crash_at_step:
                marker = self.options.get("crash_marker")
                if not marker:
                    os._exit(3)
                if not os.path.exists(str(marker)):  # crash once: the marker remembers it
                    open(str(marker), "w").close()
                    os._exit(3)
            metrics = self.problem.step_metrics(config, params, step, rng)
            avg = 0.9 * avg + 0.1 * metrics["reward"] if step > 1 else metrics["reward"]
            metrics["reward_avg"] = avg
            last = step == task.target_step
            if last or (task.eval_every and step % task.eval_every == 0):
                metrics["eval_accuracy"] = self.problem.eval_score(config, params, step, task.seed)
            if self.sleep:
                time.sleep(self.sleep)
            verdict = report(step, metrics)
            if verdict is Verdict.STOP:
                break
        final: dict[str, float] = {}
        if step > task.start_step and step != task.target_step and not (
            task.eval_every and step % task.eval_every == 0
        ):
            # a stopped segment still ends with an evaluation of the step it stopped at
            final["eval_accuracy"] = self.problem.eval_score(config, params, step, task.seed)
        self._save(task, step, rng, avg)
        done = step - task.start_step
        return SegmentOutcome(
            end_step=step, cost=self.problem.cost(task.model.cost, done), checkpoint=True,
            final_metrics=final,
        )

    @staticmethod
    def _restore(task: SegmentTask) -> tuple[np.random.Generator, float]:
        rng = np.random.default_rng([task.seed, 11])
        if task.resume_from is None:
            if task.start_step != 0:
                raise BackendError(f"segment starts at step {task.start_step} without a checkpoint")
            return rng, 0.0
        with open(os.path.join(task.resume_from, "state.json")) as f:
            state = json.load(f)
        if state["step"] != task.start_step or state["run_id"] != task.run_id:
            raise BackendError(
                f"checkpoint {task.resume_from} holds run {state['run_id']} step {state['step']}, "
                f"not run {task.run_id} step {task.start_step}"
            )
        rng.bit_generator.state = state["rng"]
        return rng, float(state["avg"])

    @staticmethod
    def _save(task: SegmentTask, step: int, rng: np.random.Generator, avg: float) -> None:
        os.makedirs(task.checkpoint_dir, exist_ok=True)
        state = {"run_id": task.run_id, "step": step, "rng": rng.bit_generator.state, "avg": avg}
        with open(os.path.join(task.checkpoint_dir, "state.json"), "w") as f:
            json.dump(state, f)

    @classmethod
    def example_study(cls) -> str:
        return _EXAMPLE


_EXAMPLE = """\
# jfhpo study on the synthetic backend: analytic GRPO-like learning curves (seconds to run).
# Every key is documented in the README's "Study file reference".
name: synthetic-demo
seed: 0
backend:
  name: synthetic
  options:
    bias: 0.5          # decades the best learning rate moves per decade of parameters
    step_seconds: 0.1  # simulated seconds per step at cost 1.0
objective: {metric: eval_accuracy, mode: max}
models:                # the model ladder: smallest proxy first, the target last
  - {name: 50k, params: 5.0e4, cost: 1.0}
  - {name: 200k, params: 2.0e5, cost: 1.6}
  - {name: 1m, params: 1.0e6, cost: 3.5}
  - {name: 4m, params: 4.0e6, cost: 10.0}
steps: {min: 10, max: 90, eta: 3}
eval_every: 10
space:
  learning_rate: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
  beta: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  epsilon: {type: float, low: 0.1, high: 0.4}
  num_generations: {type: categorical, choices: [4, 8, 16]}
optimizer: {name: hyperband}
stopping: {}           # the default early-stopping rules
budget: {seconds: 600} # compute-seconds: the sum of the segments' costs
workers: 2
confirm: {top_k: 2}
"""
