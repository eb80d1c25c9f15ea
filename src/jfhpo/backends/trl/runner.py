"""One GRPO segment with TRL, in its own process: ``python -m jfhpo.backends.trl.runner SPEC``.

The ``trl`` backend writes ``SPEC`` (a JSON file) and runs this module as a command-backend
segment (under ``accelerate launch`` when the rung asks for more than one GPU). It

* loads the rung's local model folder and the tokenizer saved beside it, the dataset from local
  files (jsonl, json, parquet, csv, or a ``save_to_disk`` folder) and the reward functions named
  ``module:function`` (with weights);
* trains through jfhpo's one TRL path (``core.train_grpo``, which the tiny workload uses too)
  with ``GRPOTrainer`` configured for the study's whole budget (``max_steps`` pinned to
  the study maximum so schedules do not depend on where a segment ends), resuming
  ``resume_path`` with ``train(resume_from_checkpoint=...)``. Bit-exact continuation rests on the
  same things as the tiny workload: a run's prompts are one seeded, fixed-order stream
  (``shuffle_dataset=False``), the trainer checkpoint restores weights, optimizer, scheduler and
  RNG states, and evaluation samples under ``fork_rng`` with its own seed;
* writes one JSON line per step ``{"step": N, "data": {...}}`` with TRL's log keys (the parent
  maps them to canonical names) and ``eval_*`` metrics at evaluation steps: every ``eval_every``
  steps and at the segment's end, on the held-out split, as the weighted mean reward
  (``eval_reward``), each reward's mean, and the study's metric function if it names one;
* ends at the segment's end step, or at the next step after SIGTERM (the parent's STOP), saves a
  trainer checkpoint, moves it to ``<checkpoint_dir>/checkpoint-N`` and only then writes the line
  of that last step, so a logged step's checkpoint is always complete;
* uses bf16 on CUDA when a GPU is present, fp32 on the CPU otherwise.
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

#: the seed of every sampled evaluation (fixed: the same weights give the same score)
EVAL_SEED = 1234
_STOP = {"requested": False}
#: GRPOConfig fields every segment sets itself (a configuration may not)
PINNED = frozenset({
    "output_dir", "max_steps", "seed", "logging_steps", "save_strategy", "eval_strategy",
    "report_to", "shuffle_dataset", "disable_tqdm", "log_completions", "reward_weights",
    "fp16", "use_cpu", "dataloader_num_workers", "log_level",
})


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
    """Scores a model on the held-out rows: sampled completions, weighted reward, metric fn."""

    def __init__(self, rows: Any, prompt_column: str, rewards: Sequence[tuple[Any, float]],
                 metric: Callable[..., Any] | None, tokenizer: Any, args: Any) -> None:
        self.rows = rows
        self.prompt_column = prompt_column
        self.rewards = rewards
        self.metric = metric
        self.tok = tokenizer
        self.args = args

    def prompts_text(self) -> list[str]:
        out = []
        for p in self.rows[self.prompt_column]:
            if isinstance(p, str):
                out.append(p)
            else:  # conversational: a list of {"role", "content"} messages
                out.append(self.tok.apply_chat_template(p, tokenize=False,
                                                        add_generation_prompt=True))
        return out

    def __call__(self, model: Any) -> dict[str, float]:
        import torch

        prompts = self.prompts_text()
        eos = self.tok.eos_token_id
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else eos
        was_training = model.training
        model.eval()
        ids: list[list[int]] = []
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(EVAL_SEED)
                old_side = self.tok.padding_side
                self.tok.padding_side = "left"
                enc = self.tok(prompts, return_tensors="pt", padding=True)
                self.tok.padding_side = old_side
                enc = {k: v.to(model.device) for k, v in enc.items()}
                gen = model.generate(**enc, do_sample=True, top_k=0, top_p=1.0,
                                     temperature=float(self.args.temperature),
                                     max_new_tokens=int(self.args.max_completion_length),
                                     eos_token_id=eos, pad_token_id=pad)
                for row in gen[:, enc["input_ids"].shape[1]:].tolist():
                    cut = row.index(eos) + 1 if eos in row else len(row)
                    ids.append(row[:cut])
        finally:
            model.train(was_training)
        completions = self.tok.batch_decode(ids, skip_special_tokens=True)
        columns = {c: list(self.rows[c]) for c in self.rows.column_names
                   if c != self.prompt_column}
        raw_prompts = list(self.rows[self.prompt_column])
        out: dict[str, float] = {}
        total = [0.0] * len(prompts)
        for fn, weight in self.rewards:
            vals = fn(prompts=raw_prompts, completions=completions, completion_ids=ids,
                      **columns)
            vals = [float("nan") if v is None else float(v) for v in vals]
            out[f"eval_reward_{getattr(fn, '__name__', 'fn')}"] = _mean(vals)
            total = [t + weight * v for t, v in zip(total, vals)]
        out["eval_reward"] = _mean(total)
        if self.metric is not None:
            value = self.metric(prompts=raw_prompts, completions=completions,
                                completion_ids=ids, **columns)
            out[f"eval_{getattr(self.metric, '__name__', 'metric')}"] = float(value)
        return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def run(spec: Mapping[str, Any]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from jfhpo.backends.trl.core import move_checkpoint, train_grpo

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    signal.signal(signal.SIGTERM, lambda *_: _STOP.update(requested=True))
    cuda = torch.cuda.is_available()
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
    shutil.rmtree(work, ignore_errors=True)
    args = grpo_config(spec, work, cuda)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    n_rows = int(spec["max_steps"]) * args.per_device_train_batch_size * \
        args.gradient_accumulation_steps * world
    train_rows = train_stream(train, n_rows, int(spec["seed"]))
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    evaluate = Evaluator(held, "prompt", rewards, metric, tokenizer, args)
    metrics_file = spec["metrics_file"]
    target, eval_every = int(spec["target_step"]), int(spec.get("eval_every", 0))
    main_process = int(os.environ.get("RANK", "0")) == 0

    def write(step: int, row: Mapping[str, Any]) -> None:
        if main_process:
            with open(metrics_file, "a") as f:
                f.write(json.dumps({"step": step, "data": dict(row)}) + "\n")

    final: list[tuple[int, dict[str, Any]]] = []

    def on_step(step: int, logs: dict[str, Any], model: Any) -> bool:
        """Writes the step's line; evaluates; ends at the target or after SIGTERM."""
        row = {k: v for k, v in logs.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        end = step >= target or _STOP["requested"]
        if end or (eval_every > 0 and step % eval_every == 0):
            row.update(evaluate(model))
        if end:
            final.append((step, row))  # written once its checkpoint is in place
            return True
        write(step, row)
        return False

    step = train_grpo(model=spec["model"], reward_funcs=[fn for fn, _ in rewards], args=args,
                      train_dataset=train_rows, tokenizer=tokenizer,
                      start_step=int(spec["start_step"]), resume_from=spec.get("resume_path") or None,
                      on_step=on_step)
    if main_process:
        move_checkpoint(work, step, os.path.join(spec["checkpoint_dir"], f"checkpoint-{step}"))
    write(step, final[-1][1])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m jfhpo.backends.trl.runner SEGMENT.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        spec = json.load(f)
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
