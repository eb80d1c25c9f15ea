"""Per-step cost of the tiny workload's GRPO segments: a few segments, the median step.

Runs ``--segments`` segments of ``--steps`` steps with the recipe on one model size through the
tiny backend's own ``run_segment`` (one torch thread, in this process), timestamps every
reported step, and prints the median wall and CPU seconds of a step (the last step of a segment,
which includes the final evaluation, is left out) and the median segment overhead (trainer
construction, model load, final evaluation, checkpoint). With ``--json`` it also writes every
step's metrics, so two versions of the code can be compared number for number.

    nice python bench/tiny_workload/step_cost.py --size 50k --segments 3 --steps 12
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.backends.tiny.models import SIZES, param_count
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict


def one_segment(backend: TinyGRPOBackend, rung: ModelRung, steps: int, seed: int,
                cache: str) -> dict[str, Any]:
    """One segment 0 -> ``steps``: per-step wall/CPU stamps and metrics, segment cost."""
    stamps: list[tuple[float, float]] = []
    rows: list[tuple[int, dict[str, float]]] = []

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        stamps.append((time.perf_counter(), time.process_time()))
        rows.append((step, dict(metrics)))
        return Verdict.CONTINUE

    with tempfile.TemporaryDirectory() as ckpt:
        task = SegmentTask(run_id=0, segment_id=0, config={}, model=rung, start_step=0,
                           target_step=steps, max_steps=steps, seed=seed, checkpoint_dir=ckpt,
                           cache_dir=cache)
        out = backend.run_segment(task, report)
    pairs = list(itertools.pairwise(stamps[:-1]))
    return {
        "seed": seed,
        "walls": [b[0] - a[0] for a, b in pairs],
        "cpus": [b[1] - a[1] for a, b in pairs],
        "segment_wall": out.cost,
        "rows": rows,
        "final": dict(out.final_metrics),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="50k")
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/jfhpo"))
    ap.add_argument("--json", default="", help="also write every step's metrics here")
    args = ap.parse_args()
    backend = TinyGRPOBackend({"task": "add2"})
    backend.setup_worker(1)
    rung = ModelRung(args.size, float(param_count(SIZES[args.size])), build={"size": args.size})
    segs = [one_segment(backend, rung, args.steps, seed, args.cache)
            for seed in range(args.segments)]
    step_wall = statistics.median(itertools.chain.from_iterable(s["walls"] for s in segs))
    step_cpu = statistics.median(itertools.chain.from_iterable(s["cpus"] for s in segs))
    overhead = statistics.median(s["segment_wall"] - args.steps * step_wall for s in segs)
    summary = {"size": args.size, "segments": args.segments, "steps": args.steps,
               "step_wall": round(step_wall, 4), "step_cpu": round(step_cpu, 4),
               "overhead_wall": round(overhead, 2)}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "segments": segs}, f, indent=1)


if __name__ == "__main__":
    main()
