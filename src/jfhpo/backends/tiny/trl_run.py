"""One GRPO segment with TRL's GRPOTrainer (imported only inside a worker).

Kept apart from ``grpo.py`` so the backend class (imported by the main process to validate study
files) never pulls in torch, transformers or TRL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any, cast

from jfhpo.backends.base import Reporter, SegmentTask
from jfhpo.backends.tiny.evaluation import accuracy
from jfhpo.backends.tiny.tasks import Splits, accuracy_reward, train_stream
from jfhpo.metric_names import TRL_NAMES, to_canonical
from jfhpo.records import Verdict

#: TRL log keys kept as extra (non-canonical) metrics, under these names
_EXTRA = {"reward_std": "reward_std", "rewards/accuracy/mean": "train_accuracy"}


def grpo_args(task: SegmentTask, cfg: Mapping[str, Any], output_dir: str) -> Any:
    """The GRPOConfig of a segment. ``max_steps`` is the study's budget (fixes the LR schedule);
    the segment's own end is enforced by the callback."""
    from trl import GRPOConfig

    schedule = cfg["lr_scheduler_type"]
    if schedule == "constant" and cfg["warmup_steps"]:
        schedule = "constant_with_warmup"  # transformers' "constant" ignores warmup
    g = cfg["num_generations"]
    return GRPOConfig(
        output_dir=output_dir,
        max_steps=task.max_steps,
        per_device_train_batch_size=cfg["prompts_per_step"] * g,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=g,
        learning_rate=cfg["learning_rate"],
        lr_scheduler_type=schedule,
        warmup_steps=cfg["warmup_steps"],
        weight_decay=cfg["weight_decay"],
        beta=cfg["beta"],
        epsilon=cfg["epsilon"],
        epsilon_high=cfg["epsilon_high"],
        entropy_coef=cfg["entropy_coef"],
        loss_type=cfg["loss_type"],
        scale_rewards=cfg["scale_rewards"],
        temperature=cfg["temperature"],
        top_p=1.0,
        top_k=0,
        max_grad_norm=cfg["max_grad_norm"],
        max_completion_length=cfg["max_completion_length"],
        shuffle_dataset=False,
        seed=task.seed % 2**32,  # numpy's legacy seeding needs 32 bits
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        bf16=False,
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
        log_level="error",
    )


def train_segment(
    *,
    task: SegmentTask,
    cfg: Mapping[str, Any],
    base_dir: str,
    splits: Splits,
    report: Reporter,
) -> tuple[int, dict[str, float]]:
    """Train ``task`` from its start to its target (or an earlier STOP); leave a resumable
    checkpoint of the end step in ``task.checkpoint_dir``. Returns (end step, final metrics).

    Trains through jfhpo's one TRL path (``jfhpo.backends.trl.core``); what is tiny's own is
    the data stream, the reward and the accuracy evaluation in the step hook."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from jfhpo.backends.trl.core import move_checkpoint, train_grpo

    hf_logging.disable_progress_bar()

    prompts, answers = train_stream(splits, task.max_steps * cfg["prompts_per_step"], task.seed)
    dataset = Dataset.from_dict({"prompt": prompts, "answer": answers})
    work = os.path.join(task.checkpoint_dir, ".trainer")
    shutil.rmtree(work, ignore_errors=True)  # left over by an interrupted attempt
    os.makedirs(task.checkpoint_dir, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    arith = splits.task
    final: dict[str, float] = {}

    def evaluate(model: Any) -> dict[str, float]:
        return {
            "eval_accuracy": accuracy(model, arith, splits.validation, sample=True),
            "eval_greedy_accuracy": accuracy(model, arith, splits.validation, sample=False),
        }

    def on_step(step: int, logs: dict[str, Any], model: Any) -> bool:
        """Reports every step, evaluates, ends at the target or on STOP."""
        metrics = to_canonical(logs, TRL_NAMES)
        for native, name in _EXTRA.items():
            v = logs.get(native)
            if isinstance(v, (int, float)):
                metrics[name] = float(v)
        at_target = step >= task.target_step
        evaluated = at_target or (task.eval_every > 0 and step % task.eval_every == 0)
        if evaluated:
            metrics.update(evaluate(model))
        verdict = report(step, metrics)
        if verdict is Verdict.STOP or at_target:
            if not evaluated:  # stopped early: the end step is still evaluated
                metrics.update(evaluate(model))
            final.clear()
            final.update(metrics)
            return True
        return False

    end = train_grpo(
        model=base_dir,
        reward_funcs=[cast(Any, accuracy_reward)],
        args=grpo_args(task, cfg, work),
        train_dataset=dataset,
        tokenizer=tokenizer,
        start_step=task.start_step,
        resume_from=task.resume_from,
        on_step=on_step,
    )
    move_checkpoint(work, end, task.checkpoint_dir)
    return end, final
