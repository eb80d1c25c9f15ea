"""Exact-resume check at a realistic size: 0->40 in one process vs 0->20 then 20->40 in another.

Uses the 50k model, a cosine schedule with 10 % warmup, beta 0.01 (a KL reference model) and an
evaluation every 10 steps, so every piece of state a resume must restore is exercised. Prints and
writes ``results/resume_check.md`` with the largest difference in any reported metric and in
any weight (0.0 means bit-identical).

    nice python bench/tiny_workload/resume_check.py --out bench/tiny_workload/results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from typing import Any

from gitinfo import git_commit  # bench/tiny_workload/gitinfo.py (the script's folder)

from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict

CONFIG = {"learning_rate": 1e-4, "lr_scheduler_type": "cosine", "warmup_steps": 0.1, "beta": 0.01}
CHILD = """
import json, sys
from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict
spec = json.loads(sys.argv[1]); spec["model"] = ModelRung(**spec["model"])
backend = TinyGRPOBackend({"task": "add2"}); backend.setup_worker(1); rows = []
backend.run_segment(SegmentTask(**spec), lambda s, m: rows.append([s, m]) or Verdict.CONTINUE)
print("ROWS " + json.dumps(rows))
"""


def main() -> None:
    from safetensors.torch import load_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="50k")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/jfhpo"))
    ap.add_argument("--out", default="bench/tiny_workload/results")
    args = ap.parse_args()
    backend = TinyGRPOBackend({"task": "add2"})
    backend.setup_worker(1)
    half = args.steps // 2
    with tempfile.TemporaryDirectory() as d:
        base = SegmentTask(
            run_id=1,
            segment_id=0,
            config=CONFIG,
            model=ModelRung(args.size, 1.0, build={"size": args.size}),
            start_step=0,
            target_step=args.steps,
            max_steps=args.steps,
            seed=5,
            checkpoint_dir=os.path.join(d, "full"),
            cache_dir=args.cache,
            eval_every=10,
        )

        def here(task: SegmentTask) -> list[tuple[int, dict[str, Any]]]:
            rows: list[tuple[int, dict[str, Any]]] = []

            def report(s: int, m: Any) -> Verdict:
                rows.append((s, dict(m)))
                return Verdict.CONTINUE

            backend.run_segment(task, report)
            return rows

        full = here(base)
        first = here(replace(base, target_step=half, checkpoint_dir=os.path.join(d, "first")))
        second_task = replace(
            base,
            start_step=half,
            checkpoint_dir=os.path.join(d, "second"),
            resume_from=os.path.join(d, "first"),
        )
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(asdict(second_task))],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in proc.stdout.splitlines() if x.startswith("ROWS "))
        second = [(int(s), m) for s, m in json.loads(line[5:])]
        seg = first + second
        assert [s for s, _ in full] == [s for s, _ in seg]
        metric_diff = max(abs(a[k] - b[k]) for (_, a), (_, b) in zip(full, seg) for k in a)
        wa = load_file(os.path.join(d, "full", "model.safetensors"))
        wb = load_file(os.path.join(d, "second", "model.safetensors"))
        weight_diff = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    evals = [(s, m["eval_accuracy"]) for s, m in full if "eval_accuracy" in m]
    text = "\n".join(
        [
            "# Exact resume at a realistic size",
            "",
            f"Command: `nice python bench/tiny_workload/resume_check.py --size {args.size} "
            f"--steps {args.steps}`  ",
            f"Commit: {git_commit()}  ",
            "",
            f"Model {args.size}; config {CONFIG}; eval every 10 steps. Run A: 0->{args.steps} in "
            f"one process. Run B: 0->{half} in that process, {half}->{args.steps} resumed from B's "
            "checkpoint in a fresh Python process.",
            "",
            f"- steps reported: {len(full)} in both",
            f"- largest difference in any reported metric: {metric_diff}",
            f"- largest difference in any weight at step {args.steps}: {weight_diff}",
            f"- eval_accuracy of run A at steps {[s for s, _ in evals]}: {[v for _, v in evals]}",
            "",
        ]
    )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "resume_check.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
