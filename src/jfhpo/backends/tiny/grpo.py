"""The tiny workload backend: real GRPO (TRL's GRPOTrainer) on small Qwen2 models, on a CPU.

A preset of the ``trl`` backend: every segment goes through the trl runner
(``jfhpo.backends.trl.runner.run_spec``, the same code a user's ``trl`` study runs in its segment
subprocess), called inside the worker so a segment pays no process start. What the preset
supplies is what a user's study would: the generated task data written as local jsonl files
(``tasks.task_files``), the reward and the evaluation metric named ``module:function``
(``jfhpo.backends.tiny.tasks:accuracy_reward`` and ``:accuracy``), the rung's base model folder
(built from a config and SFT-trained, cached by ``base_models``), and the hyperparameters
translated to ``GRPOConfig`` fields (``grpo_fields``). ``runner_spec`` builds that segment spec;
``python -m jfhpo.backends.trl.runner`` runs it unchanged.

The trainer is configured for the run's full budget (``max_steps = task.max_steps``), so the LR
schedule never depends on where a segment ends; the runner ends training at ``task.target_step``
(or earlier on ``Verdict.STOP``) with a full checkpoint of that step (weights, optimizer,
scheduler, RNG states, trainer state), which the next segment resumes. The data position is
restored too because the run's prompts are a fixed, seeded stream read in order
(``shuffle_dataset=False``): step ``k`` always sees prompts ``k*P .. (k+1)*P-1``. Evaluation
samples under ``fork_rng`` with its own seed, so it never moves the training RNG. Together these
make 0->40 and 0->20->40 (in another process) give identical weights and metrics;
``tests/backends/tiny/test_resume.py`` checks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, ClassVar

from jfhpo.backends.base import (
    Backend,
    BackendError,
    Progress,
    Reporter,
    SegmentOutcome,
    SegmentTask,
    check_option_keys,
    register_backend,
)
from jfhpo.backends.tiny import hparams
from jfhpo.backends.tiny.base_models import (
    BaseModelSpec,
    ensure_base_model,
    read_manifest,
    sft_recipe_from_options,
    spec_for,
)
from jfhpo.backends.tiny.models import dims_from_build
from jfhpo.backends.tiny.tasks import (
    DATA_FORMAT,
    ArithmeticTask,
    Splits,
    get_task,
    make_splits,
    task_files,
)
from jfhpo.backends.trl import parse_dataset, parse_evaluation, parse_rewards
from jfhpo.backends.trl.runner import SegmentHooks, make_spec
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.metric_names import TRL_NAMES, to_canonical
from jfhpo.records import Verdict
from jfhpo.space import CategoricalParam, SearchSpace

#: backend options a study may set under ``backend.options``
OPTIONS: dict[str, str] = {
    "task": "arithmetic task: add2 (default), add3, add2x3",
    "eval_problems": "held-out validation problems per evaluation (default 500)",
    "test_problems": "problems kept aside as a test split (default 1000)",
    "data_seed": "seed of the train/validation/test split (default 0)",
    "base_seed": "seed of the base models' init and SFT (default 0)",
    "sft": "warm-start SFT settings: steps, lr, batch_size, carryless_frac, warmup_frac, ...",
    "prepare_workers": "processes used by prepare() to build base models (default 2)",
    "cache_dir": "base-model cache when the study gives none (default ~/.cache/jfhpo)",
    "recipe": "hyperparameters of your starting configuration that differ from the built-in "
              "recipe (e.g. one copied from a larger model's script); they also fill every key "
              "a configuration leaves out",
}
SEGMENT_FILE = "jfhpo_segment.json"
#: the preset's trl-backend options: reward and evaluation metric as ``module:function``
REWARDS = ["jfhpo.backends.tiny.tasks:accuracy_reward"]
EVAL_METRIC = "jfhpo.backends.tiny.tasks:accuracy"
#: TRL log keys kept as extra (non-canonical) metrics, under these names
_EXTRA = {"reward_std": "reward_std", "rewards/accuracy/mean": "train_accuracy"}
#: the evaluation metrics the tiny workload reports (the runner's reward means are the same)
_EVAL = ("eval_accuracy", "eval_greedy_accuracy")


def grpo_fields(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``GRPOConfig`` fields of a resolved tiny configuration (``resolve_config``): one
    generation per optimizer step of ``prompts_per_step`` prompts x ``num_generations``
    completions, CPU fp32, sampling at top_k 0 / top_p 1. The runner adds the fields it pins
    (``max_steps``, seed, logging, ...)."""
    schedule = cfg["lr_scheduler_type"]
    if schedule == "constant" and cfg["warmup_steps"]:
        schedule = "constant_with_warmup"  # transformers' "constant" ignores warmup
    g = cfg["num_generations"]
    return {
        "per_device_train_batch_size": cfg["prompts_per_step"] * g,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,
        "num_iterations": 1,
        "num_generations": g,
        "learning_rate": cfg["learning_rate"],
        "lr_scheduler_type": schedule,
        "warmup_steps": cfg["warmup_steps"],
        "weight_decay": cfg["weight_decay"],
        "beta": cfg["beta"],
        "epsilon": cfg["epsilon"],
        "epsilon_high": cfg["epsilon_high"],
        "entropy_coef": cfg["entropy_coef"],
        "loss_type": cfg["loss_type"],
        "scale_rewards": cfg["scale_rewards"],
        "temperature": cfg["temperature"],
        "top_p": 1.0,
        "top_k": 0,
        "max_grad_norm": cfg["max_grad_norm"],
        "max_completion_length": cfg["max_completion_length"],
        "bf16": False,
        "gradient_checkpointing": False,
    }


def tiny_metrics(row: Mapping[str, float]) -> dict[str, float]:
    """A runner row under the tiny workload's names: canonical TRL metrics, ``reward_std``,
    ``train_accuracy`` and the two held-out accuracies."""
    out = {k: v for k, v in to_canonical(row, TRL_NAMES).items()
           if not k.startswith("eval_") or k in _EVAL}
    for native, name in _EXTRA.items():
        v = row.get(native)
        if isinstance(v, (int, float)):
            out[name] = float(v)
    return out


class _ReportHooks(SegmentHooks):
    """The runner's steps to the engine's reporter; a STOP verdict ends the segment."""

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.reported = 0

    def step(self, step: int, row: dict[str, float]) -> bool:
        self.reported = step
        return self.report(step, tiny_metrics(row)) is Verdict.STOP

    def end(self, step: int, row: dict[str, float]) -> None:
        if step != self.reported:  # a stopped step was reported already (before its eval)
            self.report(step, tiny_metrics(row))


def _default_cache(options: Mapping[str, Any]) -> str:
    return str(
        options.get("cache_dir")
        or os.environ.get("JFHPO_CACHE")
        or os.path.join(os.path.expanduser("~"), ".cache", "jfhpo")
    )


@register_backend
class TinyGRPOBackend(Backend):
    """GRPO with TRL on the built-in arithmetic task and model ladder (CPU, minutes).

    The default objective is ``eval_accuracy``: accuracy on held-out validation problems, sampled
    at temperature 1 with a fixed seed. Sampled rather than greedy because it is what the policy
    actually does (and what GRPO optimises); greedy accuracy moves in coarse jumps when a few
    problems flip and saturates early. Both are reported.
    """

    name: ClassVar[str] = "tiny"
    metric_names: ClassVar[Mapping[str, str]] = TRL_NAMES
    default_objective: ClassVar[str] = "eval_accuracy"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        check_option_keys(self.options, OPTIONS, "tiny")
        for key, low in (("eval_problems", 1), ("test_problems", 0), ("data_seed", 0),
                         ("base_seed", 0), ("prepare_workers", 1)):
            v = self.options.get(key, low)
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= 10**9:
                raise BackendError(
                    f"backend.options.{key}: expected an integer in [{low}, 1e9], got {v!r:.80}")
        self.task_def: ArithmeticTask = get_task(str(self.options.get("task", "add2")))
        sft_recipe_from_options(self.options)  # fail early on bad SFT settings
        own = self.options.get("recipe") or {}
        if not isinstance(own, Mapping):
            raise BackendError(f"backend.options.recipe: expected a mapping of hyperparameters, "
                               f"got {own!r:.80}")
        try:
            hparams.resolve(own)
        except BackendError as e:
            raise BackendError(f"backend.options.recipe: {e}") from None
        self._own_recipe: dict[str, Any] = dict(own)
        self._splits: Splits | None = None

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def splits(self) -> Splits:
        if self._splits is None:
            o = self.options
            self._splits = make_splits(
                self.task_def,
                seed=int(o.get("data_seed", 0)),
                n_validation=int(o.get("eval_problems", 500)),
                n_test=int(o.get("test_problems", 1000)),
            )
        return self._splits

    def base_spec(self, rung: ModelRung) -> BaseModelSpec:
        """The base-model spec (what gets SFT-trained and cached) of one ladder rung."""
        return spec_for(rung.build, dims_from_build(rung.build), self.task_def, self.options)

    def resolve_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` filled from the recipe (the ``recipe`` option's keys over the built-in one)
        and checked; raises BackendError."""
        cfg = hparams.resolve({**self._own_recipe, **config})
        if cfg["max_completion_length"] == 0:
            cfg["max_completion_length"] = self.task_def.max_completion_length
        elif cfg["max_completion_length"] < self.task_def.answer_digits + 1:
            raise BackendError(
                f"tiny backend: max_completion_length {cfg['max_completion_length']} cannot hold "
                f"an answer of task {self.task_def.name} ({self.task_def.answer_digits} digits + eos)"
            )
        return cfg

    # ---- Backend contract ----------------------------------------------------------------------
    def validate(self, space: SearchSpace, ladder: ModelLadder) -> None:
        """Check names and the ends of every range (cheap: no torch import)."""
        for p in space.params:
            values = list(p.choices) if isinstance(p, CategoricalParam) else [p.low, p.high]
            for v in values:
                hparams.check_value(p.name, v)
        for rung in ladder.rungs:
            dims_from_build(rung.build)

    def known_metrics(self) -> set[str]:
        """Canonical TRL metrics, the extra ones ``tiny_metrics`` keeps (reward_std,
        train_accuracy) and its two evaluations (sampled and greedy held-out accuracy)."""
        return {*TRL_NAMES, "reward_std", "train_accuracy", "eval_accuracy", "eval_greedy_accuracy"}

    def accepted_keys(self) -> set[str]:
        """The hyperparameters ``hparams.CHECKS`` knows (the recipe's keys)."""
        return set(hparams.CHECKS)

    def prepare(self, ladder: ModelLadder, cache_dir: str, progress: Progress) -> None:
        """Build every missing base model of the ladder, the largest first, in up to
        ``prepare_workers`` processes (one torch thread each)."""
        cache_dir = cache_dir or _default_cache(self.options)
        todo: list[ModelRung] = []
        for rung in ladder.rungs:
            spec = self.base_spec(rung)
            if read_manifest(spec.folder(cache_dir), spec.key()) is None:
                todo.append(rung)
            else:
                progress(f"base model {spec.label}/{self.task_def.name}: cached")
        if not todo:
            return
        todo.sort(key=lambda r: r.params, reverse=True)
        workers = max(1, min(int(self.options.get("prepare_workers", 2)), len(todo)))
        names = ", ".join(r.name for r in todo)
        progress(f"preparing base models ({names}) with {workers} process(es); one-off, cached")
        if workers == 1:
            for rung in todo:
                _prepare_one(dict(self.options), rung, cache_dir, progress)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {
                pool.submit(_prepare_one, dict(self.options), r, cache_dir, None): r for r in todo
            }
            for fut in as_completed(futures):
                m = fut.result()
                progress(
                    f"base model {futures[fut].name}/{self.task_def.name}: ready "
                    f"({m['sft_seconds']:.0f} s SFT, greedy accuracy {m['greedy_accuracy']:.0%}, "
                    f"sampled {m['sampled_accuracy']:.0%})"
                )

    def setup_worker(self, threads: int) -> None:
        """Offline mode, quiet libraries and ``threads`` torch threads (default 1)."""
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch

        torch.set_num_threads(max(1, int(threads or 1)))
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work has started
            pass
        _quiet_libraries()

    def data_key(self) -> str:
        """What the task files depend on: task, data seed, split sizes, file format."""
        o = self.options
        blob = json.dumps({"format": DATA_FORMAT, "task": asdict(self.task_def),
                           "data": [int(o.get("data_seed", 0)), int(o.get("eval_problems", 500)),
                                    int(o.get("test_problems", 1000))]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def runner_spec(self, task: SegmentTask, cfg: Mapping[str, Any], base_dir: str,
                    cache_dir: str) -> dict[str, Any]:
        """The trl runner's segment spec of ``task``: the task files, reward and metric as
        ``module:function`` and the base model folder, through the ``trl`` backend's own option
        parsers; evaluation samples at temperature 1 (and greedy) with the task's completion
        length, whatever the training temperature; CPU always."""
        train, validation = task_files(self.splits, cache_dir, self.data_key())
        dataset = parse_dataset({"path": train, "eval_path": validation,
                                 "eval_size": len(self.splits.validation)})
        evaluation = parse_evaluation({"temperature": 1.0, "greedy": True,
                                       "max_new_tokens": self.task_def.max_completion_length})
        return make_spec(task, model=base_dir, config=grpo_fields(cfg),
                         rewards=parse_rewards(REWARDS), eval_metric=EVAL_METRIC,
                         dataset=dataset, evaluation=evaluation, device="cpu",
                         checkpoint_dir=task.checkpoint_dir, resume_path=task.resume_from,
                         flat_checkpoint=True)

    def run_segment(self, task: SegmentTask, report: Reporter) -> SegmentOutcome:
        """One segment through the trl runner, in this worker (see the module doc)."""
        from jfhpo.backends.trl.runner import run_spec

        cfg = self.resolve_config(task.config)
        if not 0 <= task.start_step < task.target_step <= task.max_steps:
            raise BackendError(
                f"segment steps must satisfy 0 <= start ({task.start_step}) < target "
                f"({task.target_step}) <= max_steps ({task.max_steps})"
            )
        if (task.start_step > 0) != (task.resume_from is not None):
            raise BackendError("resume_from must be given exactly when start_step > 0")
        if task.resume_from is not None:
            _check_resume(task)
        spec = self.base_spec(task.model)
        cache_dir = task.cache_dir or _default_cache(self.options)
        base_dir, _ = ensure_base_model(spec, self.splits, cache_dir)
        t0 = time.perf_counter()
        end_step, row = run_spec(self.runner_spec(task, cfg, base_dir, cache_dir),
                                 _ReportHooks(report))
        final = tiny_metrics(row)
        with open(os.path.join(task.checkpoint_dir, SEGMENT_FILE), "w") as f:
            json.dump(
                {
                    "run_id": task.run_id,
                    "step": end_step,
                    "seed": task.seed,
                    "max_steps": task.max_steps,
                    "model": task.model.name,
                    "base_key": spec.key(),
                    "config": cfg,
                },
                f,
                indent=1,
            )
        return SegmentOutcome(
            end_step=end_step,
            cost=time.perf_counter() - t0,
            checkpoint=True,
            final_metrics=final,
        )

    def recipe(self) -> dict[str, Any]:
        """The study's recipe: the built-in one (below) with the ``recipe`` option's keys over it.

        The built-in one is VeRL's GRPO recipe scaled to this workload: constant LR 1e-4
        (VeRL's 1e-6 is for 7B models), KL loss beta=0.001 (k3 = VeRL low_var_kl), clip
        0.2/0.2, no entropy bonus, 8 completions per prompt (fixed group), 16 prompts per step,
        token-mean (dapo) loss, grad clip 1.0, weight decay 0.01, temperature 1.
        Sources: ``hparams`` docstring and ``docs/tiny-workload.md``."""
        return hparams.resolve(self._own_recipe)

    @classmethod
    def example_study(cls) -> str:
        from jfhpo.backends.tiny.example import EXAMPLE_STUDY

        return EXAMPLE_STUDY


def _check_resume(task: SegmentTask) -> None:
    """The resume folder must be a checkpoint of ``start_step`` with the same step budget."""
    assert task.resume_from is not None
    path = os.path.join(task.resume_from, SEGMENT_FILE)
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise BackendError(
            f"resume_from {task.resume_from}: not a tiny-backend checkpoint ({e})"
        ) from e
    if meta.get("step") != task.start_step:
        raise BackendError(
            f"resume_from {task.resume_from} holds step {meta.get('step')}, "
            f"not start_step {task.start_step}"
        )
    if meta.get("max_steps") != task.max_steps:
        raise BackendError(
            f"resume_from {task.resume_from} was trained for max_steps {meta.get('max_steps')}, "
            f"this segment for {task.max_steps}: the LR schedule would differ"
        )


def _quiet_libraries() -> None:
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module="transformers")
    warnings.filterwarnings("ignore", module="trl")


def _prepare_one(
    options: dict[str, Any], rung: ModelRung, cache_dir: str, progress: Progress | None
) -> dict[str, Any]:
    """Build one base model (runs in a spawned process when prepare uses several)."""
    backend = TinyGRPOBackend(options)
    backend.setup_worker(1)
    _, manifest = ensure_base_model(backend.base_spec(rung), backend.splits, cache_dir, progress)
    return manifest
