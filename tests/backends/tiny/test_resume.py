"""Exact resume: 0->6 in one process equals 0->3 here plus 3->6 in a fresh process.

Same weights bit for bit and the same per-step metrics. The config uses a linear schedule with
warmup, so the test also shows that the LR schedule follows ``max_steps``, not the segment end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.records import Verdict

CONFIG = {
    "learning_rate": 1e-3,
    "lr_scheduler_type": "linear",
    "warmup_steps": 2,
    "beta": 0.01,
    "num_generations": 4,
    "prompts_per_step": 8,
}

CHILD = """
import json, sys
from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict
spec = json.loads(sys.argv[1])
spec["model"] = ModelRung(**spec["model"])
backend = TinyGRPOBackend(json.loads(sys.argv[2]))
backend.setup_worker(1)
rows = []
out = backend.run_segment(SegmentTask(**spec), lambda s, m: rows.append([s, dict(m)]) or Verdict.CONTINUE)
print("RESULT " + json.dumps({"rows": rows, "end": out.end_step}))
"""


def run_here(backend: TinyGRPOBackend, task: SegmentTask) -> list[tuple[int, dict[str, float]]]:
    rows: list[tuple[int, dict[str, float]]] = []

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        rows.append((step, dict(metrics)))
        return Verdict.CONTINUE

    backend.run_segment(task, report)
    return rows


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return dict(load_file(str(folder / "model.safetensors")))


def test_segmented_run_equals_uninterrupted_run(
    cache_dir: str, options: dict[str, Any], rung: Any, tmp_path: Path
) -> None:
    backend = TinyGRPOBackend(options)
    backend.setup_worker(1)
    dirs = {k: tmp_path / k for k in ("full", "first", "second")}
    for d in dirs.values():
        d.mkdir()
    common: dict[str, Any] = dict(
        run_id=7, config=CONFIG, model=rung, max_steps=6, seed=11, cache_dir=cache_dir
    )
    full = run_here(
        backend,
        SegmentTask(
            segment_id=1, start_step=0, target_step=6, checkpoint_dir=str(dirs["full"]), **common
        ),
    )
    first = run_here(
        backend,
        SegmentTask(
            segment_id=2, start_step=0, target_step=3, checkpoint_dir=str(dirs["first"]), **common
        ),
    )
    second_task = SegmentTask(
        segment_id=3,
        start_step=3,
        target_step=6,
        checkpoint_dir=str(dirs["second"]),
        resume_from=str(dirs["first"]),
        **common,
    )
    spec = asdict(second_task)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec), json.dumps(options)],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    second = [(int(s), m) for s, m in result["rows"]]
    assert result["end"] == 6

    assert [s for s, _ in first + second] == [s for s, _ in full] == [1, 2, 3, 4, 5, 6]
    train_keys = ("reward", "kl", "entropy", "grad_norm", "lr", "loss", "response_length")
    for (_, a), (_, b) in zip(full, first + second):
        for k in train_keys:
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), k
    # the step-6 evaluation of both lineages is the same number
    assert full[-1][1]["eval_accuracy"] == second[-1][1]["eval_accuracy"]
    assert full[-1][1]["eval_greedy_accuracy"] == second[-1][1]["eval_greedy_accuracy"]
    # linear decay over max_steps=6 with 2 warmup steps (the first segment ends at 3, not 6)
    lrs = [m["lr"] for _, m in full]
    assert lrs[:4] == pytest.approx([0.0, 5e-4, 1e-3, 1e-3 * 3 / 4])
    wa, wb = weights(dirs["full"]), weights(dirs["second"])
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] == wb[k]).all(), k
