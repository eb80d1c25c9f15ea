"""The GRPO training loop of jfhpo: a segment with ``GRPOTrainer`` and a step hook.

``runner.run_spec`` (jfhpo's one TRL segment path, taken by the ``trl`` backend's subprocess and
by the built-in ``tiny`` workload, its preset, in its worker) trains through ``train_grpo``. The
hook ``on_step(step, logs, model) -> bool`` sees every completed step once, with TRL's log dict
and the live model (to evaluate), and returns True to end the segment at that step. The trainer
then saves a full checkpoint of that step (weights, optimizer, scheduler, RNG states), which
``move_checkpoint`` moves out of the trainer's work folder. Imported only inside a worker: it
imports transformers and TRL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

from transformers import PrinterCallback, TrainerCallback
from trl import GRPOTrainer

#: on_step(step, TRL log dict, model) -> True to end the segment after this step
StepHook = Callable[[int, dict[str, Any], Any], bool]


class _SegmentCallback(TrainerCallback):
    """Calls the hook once per completed step; asks for a save and a stop when it says so."""

    def __init__(self, start_step: int, on_step: StepHook) -> None:
        self.last_step = start_step
        self.on_step = on_step
        self.trainer: Any = None
        self.ended = False

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        step = int(state.global_step)
        if not logs or "train_runtime" in logs or step <= self.last_step:
            return
        self.last_step = step
        if self.on_step(step, dict(logs), self.trainer.model):
            self.ended = True
            control.should_save = True
            control.should_training_stop = True


def train_grpo(*, model: str, reward_funcs: Sequence[Any], args: Any, train_dataset: Any,
               tokenizer: Any, start_step: int, resume_from: str | None,
               on_step: StepHook) -> int:
    """Train until ``on_step`` ends the segment; returns the step it ended at. The checkpoint
    of that step is left in ``args.output_dir/checkpoint-<step>``."""
    callback = _SegmentCallback(start_step, on_step)
    trainer = GRPOTrainer(model=model, reward_funcs=list(reward_funcs), args=args,
                          train_dataset=train_dataset, processing_class=tokenizer,
                          callbacks=[callback])
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
    callback.trainer = trainer
    trainer.train(resume_from_checkpoint=resume_from)
    if not callback.ended:
        raise RuntimeError(f"training ended at step {callback.last_step} before the segment's "
                           "end step (max_steps reached or the data ran out)")
    return callback.last_step


def move_checkpoint(work: str, step: int, dest: str) -> None:
    """Move the trainer's checkpoint of ``step`` (under ``work``) to ``dest`` and remove
    ``work``: into ``dest`` itself when it exists (its files beside others), else renamed."""
    saved = os.path.join(work, f"checkpoint-{step}")
    if not os.path.isdir(saved):
        raise RuntimeError(f"the trainer wrote no checkpoint for step {step} under {work}")
    if os.path.isdir(dest):
        for name in os.listdir(saved):
            shutil.move(os.path.join(saved, name), os.path.join(dest, name))
    else:
        os.replace(saved, dest)
    shutil.rmtree(work, ignore_errors=True)
