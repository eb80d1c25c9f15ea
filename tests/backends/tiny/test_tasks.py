"""Tasks, splits, rewards and the tokenizer of the tiny workload (no training)."""

from __future__ import annotations

import pytest

from jfhpo.backends.base import BackendError
from jfhpo.backends.tiny.tasks import (
    TASKS,
    accuracy_reward,
    get_task,
    is_correct,
    make_splits,
)
from jfhpo.backends.tiny.tokenizer import BOS_ID, EOS_ID, PAD_ID, build_tokenizer, decode_answer


def ids(text: str) -> list[int]:
    return [4 + int(c) for c in text]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_splits_are_deterministic_and_disjoint(name: str) -> None:
    task = get_task(name)
    a = make_splits(task, seed=3, n_validation=50, n_test=70, max_train=500)
    b = make_splits(task, seed=3, n_validation=50, n_test=70, max_train=500)
    c = make_splits(task, seed=4, n_validation=50, n_test=70, max_train=500)
    assert a == b
    assert a.validation != c.validation
    assert (len(a.validation), len(a.test), len(a.train)) == (50, 70, 500)
    sets = [set(a.train), set(a.validation), set(a.test)]
    assert sum(len(s) for s in sets) == len(sets[0] | sets[1] | sets[2])
    assert all(len(ops) == task.operands for ops in a.train)


def test_add2_uses_every_problem() -> None:
    s = make_splits(get_task("add2"))
    assert len(s.train) + len(s.validation) + len(s.test) == 10_000


def test_prompts_answers_and_carryless() -> None:
    t = get_task("add2")
    assert t.prompt((7, 68)) == "07+68="
    assert t.answer((57, 68)) == "125"
    assert t.carryless((57, 68)) == "15"
    assert t.carryless((12, 34)) == "46"
    assert get_task("add3").carryless((999, 1)) == "990"
    assert get_task("add2x3").answer((99, 99, 99)) == "297"
    assert t.max_completion_length == 5


def test_train_stream_is_seeded_and_long_enough() -> None:
    """The tiny preset's prompts come from the trl runner's stream over the train split."""
    from datasets import Dataset

    from jfhpo.backends.trl.runner import train_stream

    s = make_splits(get_task("add2"), n_validation=10, n_test=10, max_train=30)
    ds = Dataset.from_dict({"prompt": [s.task.prompt(o) for o in s.train],
                            "answer": [s.task.answer(o) for o in s.train]})
    r1, r2, r3 = (train_stream(ds, 100, seed) for seed in (1, 1, 2))
    p1, a1 = r1["prompt"], r1["answer"]
    assert p1 == r2["prompt"] and p1 != r3["prompt"] and len(p1) == len(a1) == 100
    assert set(p1) == {s.task.prompt(o) for o in s.train}  # epochs over the whole pool
    assert all(str(sum(int(x) for x in p[:-1].split("+"))) == a for p, a in zip(p1, a1))


def test_reward_with_ids_is_strict() -> None:
    comps = [[*ids("125"), EOS_ID], ids("125"), [*ids("12"), EOS_ID], [10, 14, EOS_ID], [EOS_ID]]
    r = accuracy_reward(["p"] * 5, ["125", "125", "12", "", ""], comps, answer=["125"] * 5)
    assert r == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert accuracy_reward.__name__ == "accuracy"


def test_reward_with_text_only() -> None:
    r = accuracy_reward(["p", "p"], ["125", " 12 "], answer=["125", "13"])
    assert r == [1.0, 0.0]
    assert is_correct("7", [*ids("7"), EOS_ID, PAD_ID, PAD_ID])
    assert decode_answer(ids("7")) is None


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(BackendError, match="add2"):
        get_task("mul9")


def test_tokenizer_round_trip() -> None:
    tok = build_tokenizer()
    assert len(tok) == 16 and tok.padding_side == "left"
    enc = tok(["57+68=", "1+2="], padding=True)["input_ids"]
    assert enc[0][0] == BOS_ID and enc[1][:3] == [PAD_ID, PAD_ID, BOS_ID]
    assert tok.decode(enc[0], skip_special_tokens=True) == "57+68="
