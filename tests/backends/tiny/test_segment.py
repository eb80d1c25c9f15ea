"""Real GRPO segments on the 10k model: reporting, evaluation, stopping and checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.records import CANONICAL_METRICS, Verdict

CHECKPOINT_FILES = {
    "model.safetensors",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "trainer_state.json",
    "jfhpo_segment.json",
}


def make_task(rung: Any, ckpt: Path, cache_dir: str, **kw: Any) -> SegmentTask:
    base: dict[str, Any] = dict(
        run_id=1,
        segment_id=1,
        config={"learning_rate": 3e-4},
        model=rung,
        start_step=0,
        target_step=3,
        max_steps=10,
        seed=0,
        checkpoint_dir=str(ckpt),
        cache_dir=cache_dir,
    )
    base.update(kw)
    return SegmentTask(**base)


def test_segment_reports_every_step_and_evaluates(
    cache_dir: str, options: dict[str, Any], rung: Any, ckpt: Path
) -> None:
    backend = TinyGRPOBackend(options)
    backend.setup_worker(1)
    seen: list[tuple[int, Mapping[str, float]]] = []

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        seen.append((step, dict(metrics)))
        return Verdict.CONTINUE

    out = backend.run_segment(make_task(rung, ckpt, cache_dir, eval_every=2), report)
    assert [s for s, _ in seen] == [1, 2, 3]
    assert out.end_step == 3 and out.checkpoint and out.cost > 0
    for step, m in seen:
        for name in ("reward", "kl", "entropy", "grad_norm", "lr", "loss", "zero_std_frac"):
            assert name in m, (step, name)
        assert set(m) - set(CANONICAL_METRICS) <= {
            "eval_accuracy",
            "eval_greedy_accuracy",
            "reward_std",
            "train_accuracy",
        }
        assert ("eval_accuracy" in m) == (step in (2, 3))
        assert 0.0 <= m.get("eval_accuracy", 0.0) <= 1.0
    assert seen[-1][1]["lr"] == 3e-4  # constant schedule of the recipe
    assert out.final_metrics["eval_greedy_accuracy"] == seen[-1][1]["eval_greedy_accuracy"]
    assert set(p.name for p in ckpt.iterdir()) >= CHECKPOINT_FILES
    assert not (ckpt / ".trainer").exists()


def test_stop_verdict_ends_within_one_step_with_eval_and_checkpoint(
    cache_dir: str, options: dict[str, Any], rung: Any, ckpt: Path
) -> None:
    backend = TinyGRPOBackend(options)
    steps: list[int] = []

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        steps.append(step)
        return Verdict.STOP if step == 2 else Verdict.CONTINUE

    out = backend.run_segment(make_task(rung, ckpt, cache_dir, target_step=6), report)
    assert steps == [1, 2]
    assert out.end_step == 2
    assert "eval_accuracy" in out.final_metrics and "reward" in out.final_metrics
    assert set(p.name for p in ckpt.iterdir()) >= CHECKPOINT_FILES
