"""Held-out evaluation: greedy and sampled accuracy of a model on a list of problems.

Sampling uses a fixed seed inside ``torch.random.fork_rng``: the same weights give the same
number, and evaluating never moves the training RNG, so a run evaluated at step 20 follows the
same trajectory as one that was not (the exact-resume property depends on this).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jfhpo.backends.rng import isolated_rng
from jfhpo.backends.tiny.tasks import ArithmeticTask, Operands, is_correct
from jfhpo.backends.tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, encode_text

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

#: the seed of every sampled evaluation (fixed on purpose: a property of the benchmark)
EVAL_SEED = 1234


def prompt_tensor(task: ArithmeticTask, problems: Sequence[Operands]) -> torch.Tensor:
    """Token ids ``[bos] + prompt`` of each problem; one task's prompts all have the same length,
    so no padding is needed."""
    import torch

    rows = [[BOS_ID, *encode_text(task.prompt(p))] for p in problems]
    return torch.tensor(rows, dtype=torch.long)


def generate(
    model: PreTrainedModel,
    task: ArithmeticTask,
    problems: Sequence[Operands],
    *,
    sample: bool,
    seed: int = EVAL_SEED,
    temperature: float = 1.0,
    batch_size: int = 500,
) -> list[list[int]]:
    """Completion ids (without the prompt) for each problem, greedy or sampled."""
    import torch

    was_training = model.training
    model.eval()
    out: list[list[int]] = []
    try:
        with isolated_rng(getattr(model, "device", "cpu"), seed), torch.no_grad():
            ids = prompt_tensor(task, problems)
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                kwargs: dict[str, object] = {"do_sample": sample}
                if sample:
                    kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
                gen = model.generate(  # type: ignore[operator]
                    input_ids=chunk,
                    attention_mask=torch.ones_like(chunk),
                    max_new_tokens=task.max_completion_length,
                    eos_token_id=EOS_ID,
                    pad_token_id=PAD_ID,
                    **kwargs,
                )
                out.extend(gen[:, chunk.shape[1] :].tolist())
    finally:
        model.train(was_training)
    return out


def accuracy(
    model: PreTrainedModel,
    task: ArithmeticTask,
    problems: Sequence[Operands],
    *,
    sample: bool,
    seed: int = EVAL_SEED,
) -> float:
    """Fraction of problems answered exactly (strict check: digits then ``<eos>``)."""
    if not problems:
        return float("nan")
    comps = generate(model, task, problems, sample=sample, seed=seed)
    hits = sum(is_correct(task.answer(p), c) for p, c in zip(problems, comps))
    return hits / len(problems)
