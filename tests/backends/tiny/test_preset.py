"""The tiny workload is a preset of the trl backend: one TRL code path, not two.

The tiny backend's segment spec names its reward and metric as ``module:function`` in our
package, its task data as local jsonl files and its base model as a local folder; run as a
user's ``trl`` study (a real runner subprocess of the trl backend) it trains to exactly the
numbers and weights the tiny backend gets in its worker.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.backends.tiny.base_models import ensure_base_model
from jfhpo.backends.tiny.grpo import EVAL_METRIC, REWARDS
from jfhpo.backends.trl import TrlBackend
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict

CONFIG = {"learning_rate": 1e-3, "beta": 0.01, "num_generations": 4, "prompts_per_step": 8}


class Rows:
    def __init__(self) -> None:
        self.rows: dict[int, dict[str, float]] = {}

    def __call__(self, step: int, metrics: Mapping[str, float]) -> Verdict:
        self.rows[step] = dict(metrics)
        return Verdict.CONTINUE


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return dict(load_file(str(folder / "model.safetensors")))


def test_runner_spec_is_a_trl_study_in_our_package(
    cache_dir: str, options: dict[str, Any], rung: Any, ckpt: Path
) -> None:
    backend = TinyGRPOBackend(options)
    task = SegmentTask(run_id=1, segment_id=1, config=CONFIG, model=rung, start_step=0,
                       target_step=2, max_steps=4, seed=0, checkpoint_dir=str(ckpt),
                       cache_dir=cache_dir)
    base_dir, _ = ensure_base_model(backend.base_spec(rung), backend.splits, cache_dir)
    spec = backend.runner_spec(task, backend.resolve_config(CONFIG), base_dir, cache_dir)
    assert spec["rewards"] == [{"function": "jfhpo.backends.tiny.tasks:accuracy_reward",
                                "weight": 1.0}]
    assert spec["eval_metric"] == "jfhpo.backends.tiny.tasks:accuracy"
    assert spec["model"] == base_dir and (Path(base_dir) / "config.json").is_file()
    assert spec["config"]["per_device_train_batch_size"] == 32  # 8 prompts x 4 completions
    train = Path(spec["dataset"]["path"]).read_text().splitlines()
    held = Path(spec["dataset"]["eval_path"]).read_text().splitlines()
    assert len(train) == len(backend.splits.train) and len(held) == options["eval_problems"]
    first = backend.splits.validation[0]
    assert json.loads(held[0]) == {"prompt": backend.task_def.prompt(first),
                                   "answer": backend.task_def.answer(first)}
    # the second TRL path is gone
    assert importlib.util.find_spec("jfhpo.backends.tiny.trl_run") is None


def test_tiny_preset_equals_a_trl_study_through_the_runner_subprocess(
    cache_dir: str, options: dict[str, Any], rung: Any, tmp_path: Path
) -> None:
    """The tiny backend in this process and the trl backend's runner subprocess, given what the
    preset gives it as a user's study would, produce identical metrics and weights."""
    tiny = TinyGRPOBackend(options)
    tiny.setup_worker(1)
    here = Rows()
    tiny_dir = tmp_path / "tiny"
    tiny_dir.mkdir()
    common: dict[str, Any] = dict(run_id=3, start_step=0, target_step=3, max_steps=6, seed=4,
                                  eval_every=2, cache_dir=cache_dir)
    tiny.run_segment(SegmentTask(segment_id=1, config=CONFIG, model=rung,
                                 checkpoint_dir=str(tiny_dir), **common), here)

    base_dir, _ = ensure_base_model(tiny.base_spec(rung), tiny.splits, cache_dir)
    task = SegmentTask(segment_id=1, config=CONFIG, model=rung, checkpoint_dir=str(tiny_dir),
                       **common)
    spec = tiny.runner_spec(task, tiny.resolve_config(CONFIG), base_dir, cache_dir)
    trl = TrlBackend({"dataset": spec["dataset"], "rewards": REWARDS, "eval_metric": EVAL_METRIC,
                      "evaluation": spec["evaluation"], "timeout": 300})
    assert list(trl.opts.command[1:3]) == ["-m", "jfhpo.backends.trl.runner"]
    ck = tmp_path / "checkpoints" / "staging" / "segment-1"
    ck.mkdir(parents=True)
    there = Rows()
    out = trl.run_segment(SegmentTask(segment_id=1, config=spec["config"],
                                      model=ModelRung("10k", 10420, 1.0, {"model": base_dir}),
                                      checkpoint_dir=str(ck), **common), there)
    assert out.end_step == 3 and sorted(there.rows) == sorted(here.rows) == [1, 2, 3]
    for step in (1, 2, 3):
        for name in ("loss", "reward", "kl", "entropy", "grad_norm", "lr"):
            assert there.rows[step][name] == here.rows[step][name], (step, name)
    for step in (2, 3):  # eval_every 2 and the segment end
        for name in ("eval_accuracy", "eval_greedy_accuracy"):
            assert there.rows[step][name] == here.rows[step][name], (step, name)
    assert "eval_accuracy" not in here.rows[1]
    w_here, w_there = weights(tiny_dir), weights(ck / "checkpoint-3")
    assert w_here.keys() == w_there.keys()
    for name, tensor in w_here.items():
        assert bool((tensor == w_there[name]).all()), name
