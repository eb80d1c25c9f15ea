"""Is a trl-backend segment bit-reproducible on this machine's accelerator, and does a resumed
segment match an uninterrupted one? Three real TRL segments of the example project's smallest
model: two uninterrupted runs with the same seed, and one stopped after step 1 and continued
from its checkpoint. Prints, per pair, the first step whose loss or reward differs.

    python bench/device/resume_check.py [steps]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from jfhpo.backends.base import SegmentTask
from jfhpo.backends.trl import TrlBackend
from jfhpo.examples.trl_project import build_project
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict

CONFIG = {"learning_rate": 3e-3, "num_generations": 4, "per_device_train_batch_size": 8,
          "max_completion_length": 4, "beta": 0.01, "warmup_steps": 1}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    tmp = Path(tempfile.mkdtemp(prefix="jfhpo-resume-check-"))
    project = build_project(tmp / "project")
    backend = TrlBackend({"dataset": {"path": project["data"], "eval_size": 16},
                          "rewards": ["user_rewards:correct"], "paths": [project["project"]],
                          "timeout": 300, "grace": 120})

    def run(seg: int, start: int, stop_at: int | None = None,
            resume: str | None = None) -> tuple[dict[int, dict[str, float]], str]:
        rows: dict[int, dict[str, float]] = {}
        ck = tmp / "ck" / f"segment-{seg}"
        ck.mkdir(parents=True)

        def report(step: int, metrics: Mapping[str, float]) -> Verdict:
            rows[step] = dict(metrics)
            return Verdict.STOP if stop_at is not None and step >= stop_at else Verdict.CONTINUE

        task = SegmentTask(run_id=1, segment_id=seg, config=CONFIG,
                           model=ModelRung("s", 1, 1.0, {"model": project["models"]["s"][0]}),
                           start_step=start, target_step=n, max_steps=n, seed=5,
                           checkpoint_dir=str(ck), resume_from=resume)
        backend.run_segment(task, report)
        return rows, str(ck)

    def first_difference(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> str:
        for step in sorted(set(a) & set(b)):
            for name in ("loss", "reward"):
                if a[step].get(name) != b[step].get(name):
                    return f"step {step} {name}: {a[step].get(name)} vs {b[step].get(name)}"
        return "none (bit-identical on every shared step)"

    full, _ = run(1, 0)
    again, _ = run(2, 0)
    stopped, ck = run(3, 0, stop_at=1)
    k = max(stopped)
    if k >= n:
        sys.exit(f"the stop landed only at step {k}: run with more steps")
    rest, _ = run(4, k, resume=ck)
    print(f"uninterrupted vs uninterrupted: first difference {first_difference(full, again)}")
    print(f"uninterrupted vs stopped at {k} and resumed: first difference "
          f"{first_difference(full, {**stopped, **rest})}")


if __name__ == "__main__":
    main()
