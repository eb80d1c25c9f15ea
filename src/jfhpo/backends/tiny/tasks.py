"""Verifiable arithmetic tasks: problems, deterministic splits, rewards and accuracy checks.

A task is a small data module. ``add2`` asks for the sum of two 2-digit numbers (``"57+68="`` ->
``"125"``), ``add3`` of two 3-digit numbers, ``add2x3`` of three 2-digit numbers. Operands are
zero-padded so every prompt of a task has the same length; the answer is the plain decimal sum
followed by ``<eos>``. The reward is 1 when the completion's digits before ``<eos>`` are the sum,
else 0 (binary, like VeRL's GSM8K scorer), so reward and accuracy are the same quantity.

Splits depend only on the task and a data seed, never on the run: every run of a study is trained
on the same pool and scored on the same held-out problems. ``carryless`` gives the digit-wise sum
modulo 10 (57+68 -> 15), the wrong-but-plausible answer used to make SFT warm starts that GRPO can
improve (see ``base_models``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jfhpo.backends.base import BackendError
from jfhpo.backends.tiny.tokenizer import decode_answer

Operands = tuple[int, ...]


@dataclass(frozen=True)
class ArithmeticTask:
    """Sum ``operands`` numbers of ``digits`` digits each."""

    name: str
    digits: int
    operands: int
    description: str

    @property
    def n_problems(self) -> int:
        return int(10 ** (self.digits * self.operands))

    @property
    def answer_digits(self) -> int:
        """Most digits an answer can have."""
        return len(str(self.operands * (10**self.digits - 1)))

    @property
    def max_completion_length(self) -> int:
        """Tokens a correct completion needs (answer digits + ``<eos>``) plus one of slack, so a
        completion that never ends is always too long to be correct."""
        return self.answer_digits + 2

    def prompt(self, ops: Operands) -> str:
        return "+".join(f"{x:0{self.digits}d}" for x in ops) + "="

    @staticmethod
    def answer(ops: Operands) -> str:
        return str(sum(ops))

    def carryless(self, ops: Operands) -> str:
        """The digit-wise sum without carries (57+68 -> "15"): a plausible wrong answer."""
        out = 0
        for pos in range(self.digits):
            d = sum((x // 10**pos) % 10 for x in ops) % 10
            out += d * 10**pos
        return str(out)

    def operands_of(self, index: int) -> Operands:
        """Problem number ``index`` (0 <= index < n_problems) as its operands."""
        base = 10**self.digits
        ops = []
        for _ in range(self.operands):
            ops.append(index % base)
            index //= base
        return tuple(reversed(ops))


TASKS: dict[str, ArithmeticTask] = {
    t.name: t
    for t in (
        ArithmeticTask("add2", 2, 2, "two 2-digit numbers (10,000 problems)"),
        ArithmeticTask("add3", 3, 2, "two 3-digit numbers (10^6 problems; harder: two carries)"),
        ArithmeticTask("add2x3", 2, 3, "three 2-digit numbers (10^6 problems; carries up to 2)"),
    )
}


def get_task(name: str) -> ArithmeticTask:
    """Look a task up by name; the error lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise BackendError(f"unknown tiny task '{name}'; valid tasks: {sorted(TASKS)}") from None


@dataclass(frozen=True)
class Splits:
    """Disjoint train / validation / test problems of one task, fixed by a data seed."""

    task: ArithmeticTask
    train: tuple[Operands, ...]
    validation: tuple[Operands, ...]
    test: tuple[Operands, ...]

    def split(self, name: str) -> tuple[Operands, ...]:
        if name not in ("train", "validation", "test"):
            raise BackendError(f"unknown split '{name}'; valid: train, validation, test")
        out: tuple[Operands, ...] = getattr(self, name)
        return out


def make_splits(
    task: ArithmeticTask,
    seed: int = 0,
    n_validation: int = 500,
    n_test: int = 1000,
    max_train: int = 50_000,
) -> Splits:
    """Deterministic disjoint splits: the same (task, seed, sizes) give the same problems on every
    machine (numpy's PCG64 generator is stable across platforms and versions)."""
    held = n_validation + n_test
    if held >= task.n_problems:
        raise BackendError(
            f"task {task.name}: {held} held-out problems leave none to train on "
            f"({task.n_problems} in all)"
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    n_take = min(task.n_problems, held + max_train)
    if task.n_problems <= 200_000:
        idx = rng.permutation(task.n_problems)[:n_take]
    else:
        idx = rng.choice(task.n_problems, size=n_take, replace=False)
    ops = [task.operands_of(int(i)) for i in idx]
    return Splits(
        task=task,
        test=tuple(ops[:n_test]),
        validation=tuple(ops[n_test:held]),
        train=tuple(ops[held:]),
    )


def is_correct(answer: str, completion_ids: Sequence[int] | None = None, text: str | None = None) -> bool:
    """Whether a completion answers ``answer``.

    With token ids (the strict check): the digits before the first ``<eos>`` must equal the answer;
    a completion that never ends or emits a non-digit first is wrong. With text only (specials
    already stripped): the stripped text must equal the answer.
    """
    if completion_ids is not None:
        return decode_answer(list(completion_ids)) == answer
    return text is not None and text.strip() == answer


def accuracy_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: 1.0 for a correct sum, else 0.0.

    The dataset column ``answer`` arrives in ``kwargs['answer']`` (TRL passes every non-prompt
    column). Named ``accuracy`` so TRL logs it as ``rewards/accuracy/mean``.
    """
    answers = kwargs["answer"]
    out: list[float] = []
    for i, ans in enumerate(answers):
        ids = completion_ids[i] if completion_ids is not None else None
        text = completions[i] if isinstance(completions[i], str) else None
        out.append(1.0 if is_correct(str(ans), ids, text) else 0.0)
    return out


accuracy_reward.__name__ = "accuracy"


def accuracy(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None = None,
    **kwargs: Any,
) -> float:
    """Evaluation metric (``jfhpo.backends.tiny.tasks:accuracy`` for the trl runner): the
    fraction of held-out problems answered exactly; reported as ``eval_accuracy`` (sampled) and
    ``eval_greedy_accuracy``."""
    hits = accuracy_reward(prompts, completions, completion_ids, **kwargs)
    return sum(hits) / len(hits) if hits else float("nan")


#: bump when the files ``write_task_files`` makes change
DATA_FORMAT = 1


def task_files(splits: Splits, cache_dir: str, key: str) -> tuple[str, str]:
    """``train.jsonl`` and ``validation.jsonl`` of ``splits`` (rows ``{"prompt", "answer"}``,
    in split order) under ``cache_dir/tiny/data``, written once and reused: the tiny workload's
    task data as local files, read by the trl runner's generic dataset loader. ``key`` names the
    split (task, data seed, sizes). Written in a temporary folder and renamed into place, so
    concurrent workers never read a half-written file."""
    import json
    import os
    import shutil
    import tempfile

    final = os.path.join(cache_dir, "tiny", "data", f"{splits.task.name}-{key}")
    paths = (os.path.join(final, "train.jsonl"), os.path.join(final, "validation.jsonl"))
    if all(os.path.isfile(p) for p in paths):
        return paths
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(final))
    try:
        for name, problems in (("train", splits.train), ("validation", splits.validation)):
            with open(os.path.join(tmp, f"{name}.jsonl"), "w") as f:
                for ops in problems:
                    row = {"prompt": splits.task.prompt(ops), "answer": splits.task.answer(ops)}
                    f.write(json.dumps(row) + "\n")
        try:
            os.replace(tmp, final)
        except OSError:  # another worker put it in place first
            if not all(os.path.isfile(p) for p in paths):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths

RewardFn = Callable[..., list[float]]
