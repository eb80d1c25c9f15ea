"""The trl backend on a user's project built on disk (models, jsonl data, reward module):
a STOP ends a segment gracefully (evaluated, checkpointed), and a run continued from that
checkpoint in a fresh process matches an uninterrupted run bit for bit. Each segment is a real
TRL subprocess, so these tests take tens of seconds."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

from jfhpo.backends.base import BackendError, SegmentTask
from jfhpo.backends.command_proc import group_alive
from jfhpo.backends.trl import TrlBackend
from jfhpo.examples.trl_project import build_project
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict

CONFIG = {"learning_rate": 3e-3, "num_generations": 4, "per_device_train_batch_size": 8,
          "max_completion_length": 4, "beta": 0.01, "warmup_steps": 1}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_project(tmp_path_factory.mktemp("project"))


def backend(project: Mapping[str, Any]) -> TrlBackend:
    return TrlBackend({"dataset": {"path": project["data"], "eval_size": 16},
                       "rewards": ["user_rewards:correct",
                                   {"function": "user_rewards:short", "weight": 0.5}],
                       "eval_metric": "user_rewards:exact_match",
                       "paths": [project["project"]], "timeout": 300, "grace": 120})


#: the segment length: long enough that a STOP sent after step 1 lands before the end even
#: when the metrics file is read late (the stop travels by file and signal, not by handshake)
N = 20


def segment(project: Mapping[str, Any], tmp: Path, seg: int, start: int, target: int,
            resume: str | None = None) -> SegmentTask:
    ck = tmp / "checkpoints" / "staging" / f"segment-{seg}"
    ck.mkdir(parents=True, exist_ok=True)
    path = project["models"]["s"][0]
    return SegmentTask(run_id=1, segment_id=seg, config=CONFIG,
                       model=ModelRung("s", 1, 1.0, {"model": path}), start_step=start,
                       target_step=target, max_steps=N, seed=5, checkpoint_dir=str(ck),
                       resume_from=resume)


class Rows:
    def __init__(self, stop_at: int | None = None) -> None:
        self.rows: dict[int, dict[str, float]] = {}
        self.stop_at = stop_at

    def __call__(self, step: int, metrics: Mapping[str, float]) -> Verdict:
        self.rows[step] = dict(metrics)
        stop = self.stop_at is not None and step >= self.stop_at
        return Verdict.STOP if stop else Verdict.CONTINUE


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return dict(load_file(str(folder / "model.safetensors")))


def test_graceful_stop_then_resume_is_bit_exact(project: dict[str, Any], tmp_path: Path) -> None:
    b = backend(project)
    full = Rows()
    out = b.run_segment(segment(project, tmp_path, 1, 0, N), full)
    assert sorted(full.rows) == list(range(1, N + 1)) and out.end_step == N and out.checkpoint
    assert {"reward", "kl", "entropy", "grad_norm", "eval_reward", "eval_exact_match",
            "eval_reward_correct", "eval_reward_short"} <= set(full.rows[N])
    assert "eval_reward" not in full.rows[3]  # eval_every 0: only at the segment's end

    stopped = Rows(stop_at=1)
    first = segment(project, tmp_path, 2, 0, N)
    out1 = b.run_segment(first, stopped)
    k = out1.end_step
    assert 1 <= k < N and out1.checkpoint, "a STOP ends the segment after its current step"
    assert "eval_reward" in stopped.rows[k]  # the stop step is evaluated
    assert (Path(first.checkpoint_dir) / f"checkpoint-{k}").is_dir()
    pgid = int((tmp_path / "logs" / "segment-2" / "pgid").read_text())
    assert not group_alive(pgid)

    rest = Rows()
    b.run_segment(segment(project, tmp_path, 3, k, N, resume=first.checkpoint_dir), rest)
    assert sorted(rest.rows) == list(range(k + 1, N + 1))
    for step in range(k + 1, N + 1):
        for name in ("loss", "reward", "grad_norm", "entropy", "lr"):
            assert rest.rows[step][name] == full.rows[step][name], (step, name)
    assert rest.rows[N]["eval_reward"] == full.rows[N]["eval_reward"]
    w_full = weights(tmp_path / "checkpoints" / "staging" / "segment-1" / f"checkpoint-{N}")
    w_rest = weights(tmp_path / "checkpoints" / "staging" / "segment-3" / f"checkpoint-{N}")
    assert w_full.keys() == w_rest.keys()
    for name, tensor in w_full.items():
        assert bool((tensor == w_rest[name]).all()), name


def test_options_are_checked() -> None:
    with pytest.raises(BackendError, match="rewards"):
        TrlBackend({"dataset": "d.jsonl", "rewards": ["no_colon"]})
    with pytest.raises(BackendError, match="dataset"):
        TrlBackend({"dataset": {"file": "x"}, "rewards": ["m:f"]})
    with pytest.raises(BackendError, match="unknown key"):
        TrlBackend({"dataset": "d.jsonl", "rewards": ["m:f"], "reward": 1})
    for bad, field in (({"greedy": "yes"}, "evaluation.greedy"),
                       ({"temperature": 0}, "evaluation.temperature"),
                       ({"max_new_tokens": 1.5}, "evaluation.max_new_tokens"),
                       ({"top_k": 3}, "unknown key")):
        with pytest.raises(BackendError, match=field):
            TrlBackend({"dataset": "d.jsonl", "rewards": ["m:f"], "evaluation": bad})
    ok = TrlBackend({"dataset": "d.jsonl", "rewards": ["m:f"], "evaluation": {"greedy": True}})
    assert ok.evaluation == {"greedy": True}


def test_recipe_is_trls_own_defaults() -> None:
    from trl import GRPOConfig

    recipe = TrlBackend.recipe()
    defaults = GRPOConfig(output_dir="unused", use_cpu=True)
    assert {"learning_rate", "beta", "epsilon", "temperature"} <= set(recipe)
    for name, value in recipe.items():
        assert getattr(defaults, name) == value, name
