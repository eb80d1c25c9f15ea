"""One GRPO segment with TRL: jfhpo's one TRL code path (``run_spec``).

Two callers come here with the same segment ``SPEC`` (a JSON-able dict, made by ``make_spec``):

* the ``trl`` backend writes it to a file and runs ``python -m jfhpo.backends.trl.runner SPEC``
  as a command-backend segment (under ``accelerate launch`` when the rung asks for more than one
  GPU); ``main`` writes the metrics file and turns SIGTERM (the parent's STOP) into a stop;
* the built-in ``tiny`` workload (a preset of the ``trl`` backend) calls ``run_spec`` inside its
  worker process with its generated task data written as local jsonl files, its reward and
  metric named ``module:function`` in ``jfhpo.backends.tiny.tasks`` and its base model folder,
  and hands the steps to the engine's reporter (no subprocess start per segment).

``run_spec``

* loads the rung's local model folder and the tokenizer saved beside it, the dataset from local
  files (jsonl, json, parquet, csv, or a ``save_to_disk`` folder) and the reward functions named
  ``module:function`` (with weights);
* trains through ``core.train_grpo`` with ``GRPOTrainer`` configured for the study's whole
  budget (``max_steps`` pinned to the study maximum so schedules do not depend on where a
  segment ends), resuming ``resume_path`` with ``train(resume_from_checkpoint=...)``. Bit-exact
  continuation rests on three things: a run's prompts are one seeded, fixed-order stream
  (``shuffle_dataset=False``), the trainer checkpoint restores weights, optimizer, scheduler and
  RNG states, and evaluation samples with its own seed and restores every generator it touched,
  the GPU's too (``backends.rng.isolated_rng``);
* hands out one row per step with TRL's log keys (the caller maps them to canonical names) and
  ``eval_*`` metrics at evaluation steps: every ``eval_every`` steps and at the segment's end, on
  the held-out split, as the weighted mean reward (``eval_reward``), each reward's mean, and the
  metric function if the spec names one (``evaluation: {greedy: true}`` adds the same on greedy
  completions as ``eval_greedy_*``);
* ends at the segment's end step, or when the caller asks to stop, saves a trainer checkpoint,
  moves it to ``<checkpoint_dir>/checkpoint-N`` (``flat_checkpoint``: into ``checkpoint_dir``
  itself) and only then hands out the last step, so a reported end step's checkpoint is always
  complete;
* uses bf16 on CUDA when a GPU is present (unless the spec says ``device: cpu``), fp32 on the
  CPU otherwise.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jfhpo.backends.rng import isolated_rng

#: the seed of every sampled evaluation (fixed: the same weights give the same score)
EVAL_SEED = 1234
_STOP = {"requested": False}
#: GRPOConfig fields every segment sets itself (a configuration may not)
PINNED = frozenset({
    "output_dir", "max_steps", "seed", "logging_steps", "save_strategy", "eval_strategy",
    "report_to", "shuffle_dataset", "disable_tqdm", "log_completions", "reward_weights",
    "fp16", "use_cpu", "dataloader_num_workers", "log_level",
})


def make_spec(task: Any, *, model: str, config: Mapping[str, Any],
              rewards: Sequence[Mapping[str, Any]], dataset: Mapping[str, Any],
              checkpoint_dir: str, resume_path: str | None, eval_metric: str | None = None,
              paths: Sequence[str] = (), metrics_file: str = "",
              evaluation: Mapping[str, Any] | None = None, device: str = "auto",
              flat_checkpoint: bool = False) -> dict[str, Any]:
    """The segment spec ``run_spec`` reads, for ``task`` (a ``SegmentTask``): its steps, seed
    and evaluation interval, with the model folder, GRPOConfig fields, parsed rewards
    (``[{function, weight}]``), parsed dataset and the rest as given."""
    return {
        "model": os.path.abspath(model),
        "config": dict(config),
        "rewards": [dict(r) for r in rewards],
        "eval_metric": eval_metric,
        "paths": list(paths),
        "dataset": dict(dataset),
        "evaluation": dict(evaluation or {}),
        "device": device,
        "start_step": task.start_step,
        "target_step": task.target_step,
        "max_steps": task.max_steps,
        "eval_every": task.eval_every,
        "seed": task.seed,
        "resume_path": resume_path or "",
        "checkpoint_dir": os.path.abspath(checkpoint_dir),
        "flat_checkpoint": flat_checkpoint,
        "metrics_file": metrics_file,
    }


def load_function(ref: str, paths: Sequence[str] = ()) -> Callable[..., Any]:
    """Import ``module:function`` (``module`` importable from ``paths`` or ``sys.path``)."""
    for p in reversed(list(paths)):
        if p not in sys.path:
            sys.path.insert(0, p)
    module, _, name = ref.partition(":")
    if not module or not name:
        raise ValueError(f"{ref!r} is not of the form module:function")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"{ref!r}: module {module} has no function {name}")
    return fn


def load_rows(path: str, fmt: str | None = None) -> Any:
    """A ``datasets.Dataset`` from a local file or ``save_to_disk`` folder."""
    import datasets

    if os.path.isdir(path):
        ds = datasets.load_from_disk(path)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else next(iter(ds.values()))
        return ds
    kind = fmt or os.path.splitext(path)[1].lstrip(".").lower()
    builder = {"jsonl": "json", "json": "json", "parquet": "parquet", "csv": "csv"}.get(kind)
    if builder is None:
        raise ValueError(f"dataset {path}: unknown format {kind!r} (jsonl, json, parquet, csv, "
                         "or a save_to_disk folder)")
    return datasets.load_dataset(builder, data_files=path, split="train")


def train_stream(ds: Any, n_rows: int, seed: int) -> Any:
    """The run's training rows in order: seeded permutations, epoch after epoch, ``n_rows`` long."""
    import datasets
    import numpy as np

    rng = np.random.Generator(np.random.PCG64([seed, 7]))
    order: list[int] = []
    while len(order) < n_rows:
        order.extend(int(i) for i in rng.permutation(len(ds)))
    return datasets.Dataset.from_dict(ds.select(order[:n_rows]).to_dict())


def grpo_config(spec: Mapping[str, Any], output_dir: str, cuda: bool) -> Any:
    """``GRPOConfig`` of the segment: the study's fields, then what a segment must pin."""
    from trl import GRPOConfig

    fields = dict(spec["config"])
    weights = [float(r["weight"]) for r in spec["rewards"]]
    pinned = {
        "output_dir": output_dir, "max_steps": int(spec["max_steps"]),
        "seed": int(spec["seed"]) % 2**32, "logging_steps": 1, "save_strategy": "no",
        "eval_strategy": "no", "report_to": "none", "shuffle_dataset": False,
        "disable_tqdm": True, "log_completions": False, "reward_weights": weights,
        "fp16": False, "use_cpu": not cuda, "dataloader_num_workers": 0,
        "log_level": "error",
    }
    clash = sorted(set(fields) & PINNED)
    if clash:
        raise ValueError(f"GRPOConfig field(s) {clash} are set by jfhpo for every segment")
    known = set(GRPOConfig.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown GRPOConfig field(s) {unknown} in the configuration")
    fields.setdefault("bf16", cuda)  # bf16 on a GPU unless the study says otherwise
    if not cuda:
        fields["bf16"] = False
    return GRPOConfig(**{**fields, **pinned})


class Evaluator:
    """Scores a model on the held-out rows: sampled completions, weighted reward, metric fn.

    ``temperature`` and ``max_new_tokens`` default to the training ones; with ``greedy`` the
    rows are also scored on greedy completions, reported as ``eval_greedy_*``. Sampling runs
    under ``fork_rng`` with a fixed seed: the same weights give the same score, and evaluating
    never moves the training RNG (bit-exact continuation depends on it)."""

    def __init__(self, rows: Any, prompt_column: str, rewards: Sequence[tuple[Any, float]],
                 metric: Callable[..., Any] | None, tokenizer: Any, *, temperature: float,
                 max_new_tokens: int, greedy: bool = False) -> None:
        self.rows = rows
        self.prompt_column = prompt_column
        self.rewards = rewards
        self.metric = metric
        self.tok = tokenizer
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.greedy = greedy

    def prompts_text(self) -> list[str]:
        out = []
        for p in self.rows[self.prompt_column]:
            if isinstance(p, str):
                out.append(p)
            else:  # conversational: a list of {"role", "content"} messages
                out.append(self.tok.apply_chat_template(p, tokenize=False,
                                                        add_generation_prompt=True))
        return out

    def generate(self, model: Any, prompts: list[str], sample: bool) -> list[list[int]]:
        """Completion ids (cut after the first eos) of every prompt, in one batch."""
        import torch

        eos = self.tok.eos_token_id
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else eos
        kwargs: dict[str, Any] = {"do_sample": sample}
        if sample:
            kwargs.update(top_k=0, top_p=1.0, temperature=self.temperature)
        ids: list[list[int]] = []
        with isolated_rng(model.device, EVAL_SEED), torch.no_grad():
            old_side = self.tok.padding_side
            self.tok.padding_side = "left"
            enc = self.tok(prompts, return_tensors="pt", padding=True)
            self.tok.padding_side = old_side
            enc = {k: v.to(model.device) for k, v in enc.items()}
            gen = model.generate(**enc, max_new_tokens=self.max_new_tokens, eos_token_id=eos,
                                 pad_token_id=pad, **kwargs)
            for row in gen[:, enc["input_ids"].shape[1]:].tolist():
                cut = row.index(eos) + 1 if eos in row else len(row)
                ids.append(row[:cut])
        return ids

    def score(self, ids: list[list[int]], prefix: str) -> dict[str, float]:
        """Each reward's mean, the weighted mean reward and the metric, named ``prefix*``."""
        completions = self.tok.batch_decode(ids, skip_special_tokens=True)
        columns = {c: list(self.rows[c]) for c in self.rows.column_names
                   if c != self.prompt_column}
        raw_prompts = list(self.rows[self.prompt_column])
        out: dict[str, float] = {}
        total = [0.0] * len(ids)
        for fn, weight in self.rewards:
            vals = fn(prompts=raw_prompts, completions=completions, completion_ids=ids,
                      **columns)
            vals = [float("nan") if v is None else float(v) for v in vals]
            out[f"{prefix}reward_{getattr(fn, '__name__', 'fn')}"] = _mean(vals)
            total = [t + weight * v for t, v in zip(total, vals)]
        out[f"{prefix}reward"] = _mean(total)
        if self.metric is not None:
            value = self.metric(prompts=raw_prompts, completions=completions,
                                completion_ids=ids, **columns)
            out[f"{prefix}{getattr(self.metric, '__name__', 'metric')}"] = float(value)
        return out

    def __call__(self, model: Any) -> dict[str, float]:
        prompts = self.prompts_text()
        was_training = model.training
        model.eval()
        try:
            out = self.score(self.generate(model, prompts, sample=True), "eval_")
            if self.greedy:
                out.update(self.score(self.generate(model, prompts, sample=False),
                                      "eval_greedy_"))
        finally:
            model.train(was_training)
        return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


class SegmentHooks:
    """What a caller of ``run_spec`` does with the steps (the base class: nothing, never stops).

    ``stop_requested()`` is asked before each completed step is handed out (True: end the segment
    at that step, evaluated); ``step(step, row)`` hands out every step but the last one and may
    answer True to end the segment there (it is then evaluated if it was not already);
    ``end(step, row)`` hands out the last step once its checkpoint is in place. Rows hold TRL's
    numeric log keys plus the ``eval_*`` metrics of evaluation steps."""

    def stop_requested(self) -> bool:
        return False

    def step(self, step: int, row: dict[str, float]) -> bool:
        return False

    def end(self, step: int, row: dict[str, float]) -> None:
        pass


class MetricsFileHooks(SegmentHooks):
    """The ``trl`` backend's subprocess: one JSON line ``{"step", "data"}`` per step appended to
    the metrics file (by the main process only), and a stop when SIGTERM arrived."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.main_process = int(os.environ.get("RANK", "0")) == 0

    def write(self, step: int, row: Mapping[str, Any]) -> None:
        if self.main_process:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, "data": dict(row)}) + "\n")

    def stop_requested(self) -> bool:
        return bool(_STOP["requested"])

    def step(self, step: int, row: dict[str, float]) -> bool:
        self.write(step, row)
        return False  # a SIGTERM is seen by stop_requested at the next step

    def end(self, step: int, row: dict[str, float]) -> None:
        self.write(step, row)


def rows_needed(args: Any, max_steps: int) -> int:
    """Prompts a run of ``max_steps`` optimizer steps reads: each step takes
    ``per_device_train_batch_size * gradient_accumulation_steps * world`` completions, i.e. that
    many divided by ``num_generations`` distinct prompts, drawn a generation batch at a time
    (``generation_batch_size`` completions), so the count is rounded up to whole generation
    batches: the stream never runs out before ``max_steps`` (the sampler drops a partial batch).
    """
    g = max(1, int(args.num_generations))
    world = int(getattr(args, "world_size", 0) or os.environ.get("WORLD_SIZE", "1"))
    per_step = -(-args.per_device_train_batch_size * args.gradient_accumulation_steps * world // g)
    per_generation = max(1, int(getattr(args, "generation_batch_size", 0) or 0) // g)
    return -(-max_steps * per_step // per_generation) * per_generation


def run_spec(spec: Mapping[str, Any], hooks: SegmentHooks) -> tuple[int, dict[str, float]]:
    """Train one segment as ``spec`` says (see the module doc); returns the end step and the
    last step's row. Runs in the calling process: the ``trl`` backend's subprocess (``main``)
    and the tiny workload's worker both come here."""
    import torch
    from transformers import AutoTokenizer

    from jfhpo.backends.trl.core import move_checkpoint, train_grpo

    _quiet()
    cuda = torch.cuda.is_available() and spec.get("device", "auto") != "cpu"
    paths = list(spec.get("paths", []))
    rewards = [(load_function(r["function"], paths), float(r["weight"]))
               for r in spec["rewards"]]
    metric = load_function(spec["eval_metric"], paths) if spec.get("eval_metric") else None
    data = spec["dataset"]
    rows = load_rows(data["path"], data.get("format"))
    column = data.get("prompt_column", "prompt")
    if column not in rows.column_names:
        raise ValueError(f"dataset {data['path']}: no prompt column {column!r} "
                         f"(columns: {rows.column_names})")
    if column != "prompt":
        rows = rows.rename_column(column, "prompt")
    if data.get("eval_path"):
        held = load_rows(data["eval_path"], data.get("format"))
        if column != "prompt":
            held = held.rename_column(column, "prompt")
        train = rows
    else:
        parts = rows.train_test_split(test_size=int(data.get("eval_size", 64)),
                                      seed=int(data.get("data_seed", 0)), shuffle=True)
        train, held = parts["train"], parts["test"]
    held = held.select(range(min(len(held), int(data.get("eval_size", 64)))))

    work = os.path.join(spec["checkpoint_dir"], ".trainer")
    shutil.rmtree(work, ignore_errors=True)  # left over by an interrupted attempt
    os.makedirs(spec["checkpoint_dir"], exist_ok=True)
    args = grpo_config(spec, work, cuda)
    train_rows = train_stream(train, rows_needed(args, int(spec["max_steps"])),
                              int(spec["seed"]))
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    ev = dict(spec.get("evaluation") or {})
    evaluate = Evaluator(held, "prompt", rewards, metric, tokenizer,
                         temperature=float(ev.get("temperature") or args.temperature),
                         max_new_tokens=int(ev.get("max_new_tokens")
                                            or args.max_completion_length),
                         greedy=bool(ev.get("greedy", False)))
    target, eval_every = int(spec["target_step"]), int(spec.get("eval_every", 0))
    final: list[tuple[int, dict[str, float]]] = []

    def on_step(step: int, logs: dict[str, Any], model: Any) -> bool:
        """Evaluates when due; ends at the target, on a stop request or when the hooks say so."""
        row = {k: float(v) for k, v in logs.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        end = step >= target or hooks.stop_requested()
        evaluated = end or (eval_every > 0 and step % eval_every == 0)
        if evaluated:
            row.update(evaluate(model))
        if not end and hooks.step(step, dict(row)):
            end = True
            if not evaluated:  # stopped early: the end step is still evaluated
                row.update(evaluate(model))
        if end:
            final.append((step, row))  # handed out once its checkpoint is in place
        return end

    step = train_grpo(model=spec["model"], reward_funcs=[fn for fn, _ in rewards], args=args,
                      train_dataset=train_rows, tokenizer=tokenizer,
                      start_step=int(spec["start_step"]),
                      resume_from=spec.get("resume_path") or None, on_step=on_step)
    if int(os.environ.get("RANK", "0")) == 0:
        dest = spec["checkpoint_dir"] if spec.get("flat_checkpoint") else \
            os.path.join(spec["checkpoint_dir"], f"checkpoint-{step}")
        move_checkpoint(work, step, dest)
    hooks.end(step, final[-1][1])
    return step, final[-1][1]


def _quiet() -> None:
    """No progress bars or info logs from transformers and datasets (they go to the log)."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m jfhpo.backends.trl.runner SEGMENT.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        spec = json.load(f)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    signal.signal(signal.SIGTERM, lambda *_: _STOP.update(requested=True))
    run_spec(spec, MetricsFileHooks(spec["metrics_file"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
