"""Learning-rate sweep of GRPO on two ladder sizes: sensitivity and proxy bias.

For each (size, learning rate, seed): one GRPO run of ``--steps`` steps with the recipe
configuration except the learning rate, evaluated (sampled, T=1, 500 held-out problems) every
``--eval-every`` steps. The question it answers: is the best learning rate on the small proxy also
the best on the larger model? Writes ``results/lr_sweep.md`` and ``results/lr_sweep.json``.

    nice python bench/tiny_workload/lr_sweep.py --out bench/tiny_workload/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from gitinfo import git_commit  # bench/tiny_workload/gitinfo.py (the script's folder)

from jfhpo.backends.base import SegmentTask
from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.backends.tiny.base_models import ensure_base_model
from jfhpo.backends.tiny.models import SIZES, param_count
from jfhpo.fidelity import ModelRung
from jfhpo.records import Verdict


def one_run(
    backend: TinyGRPOBackend, size: str, lr: float, seed: int, steps: int, every: int, cache: str
) -> dict[str, Any]:
    rung = ModelRung(size, float(param_count(SIZES[size])), build={"size": size})
    curve: list[tuple[int, float]] = []

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        if "eval_accuracy" in metrics:
            curve.append((step, metrics["eval_accuracy"]))
        return Verdict.CONTINUE

    with tempfile.TemporaryDirectory() as ckpt:
        task = SegmentTask(
            run_id=0,
            segment_id=0,
            config={"learning_rate": lr},
            model=rung,
            start_step=0,
            target_step=steps,
            max_steps=steps,
            seed=seed,
            checkpoint_dir=ckpt,
            cache_dir=cache,
            eval_every=every,
        )
        t0 = time.perf_counter()
        out = backend.run_segment(task, report)
    return {
        "size": size,
        "lr": lr,
        "seed": seed,
        "final": out.final_metrics["eval_accuracy"],
        "final_greedy": out.final_metrics["eval_greedy_accuracy"],
        "curve": curve,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown(rows: list[dict[str, Any]], base: dict[str, float], command: str, steps: int) -> str:
    sizes = sorted({r["size"] for r in rows}, key=lambda s: param_count(SIZES[s]))
    lrs = sorted({r["lr"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# GRPO learning-rate sweep on the tiny workload",
        "",
        f"Command: `{command}`  ",
        f"Commit: {git_commit()}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; one torch thread per run.",
        "",
        f"Held-out accuracy (sampled at T=1, 500 validation problems, fixed seed) after {steps} "
        f"GRPO steps, mean over seeds {seeds}; recipe configuration otherwise (constant LR, "
        "beta 0.001, clip 0.2, 16 prompts x 8 completions). `base` is the SFT warm start.",
        "",
        "| size | base | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | best lr |",
        "|---|---|" + "---|" * len(lrs) + "---|",
    ]
    for size in sizes:
        means = []
        for lr in lrs:
            vals = [r["final"] for r in rows if r["size"] == size and r["lr"] == lr]
            means.append(statistics.mean(vals) if vals else float("nan"))
        best = lrs[max(range(len(lrs)), key=lambda i: means[i])]
        cells = " | ".join(f"{m:.1%}" for m in means)
        lines.append(f"| {size} | {base[size]:.1%} | {cells} | {best:g} |")
    lines += ["", "Greedy accuracy at the end (same runs):", ""]
    lines += [
        "| size | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
        "|---|" + "---|" * len(lrs),
    ]
    for size in sizes:
        vals = [
            statistics.mean(
                [r["final_greedy"] for r in rows if r["size"] == size and r["lr"] == lr]
            )
            for lr in lrs
        ]
        lines.append(f"| {size} | " + " | ".join(f"{v:.1%}" for v in vals) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50k,1m")
    ap.add_argument("--lrs", default="3e-5,1e-4,3e-4,1e-3,3e-3")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/jfhpo"))
    ap.add_argument("--out", default="bench/tiny_workload/results")
    args = ap.parse_args()
    backend = TinyGRPOBackend({"task": "add2"})
    backend.setup_worker(1)
    base: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        rung = ModelRung(size, 1.0, build={"size": size})
        _, manifest = ensure_base_model(backend.base_spec(rung), backend.splits, args.cache, print)
        base[size] = manifest["sampled_accuracy"]
        for lr in (float(x) for x in args.lrs.split(",")):
            for seed in (int(x) for x in args.seeds.split(",")):
                row = one_run(backend, size, lr, seed, args.steps, args.eval_every, args.cache)
                print(json.dumps(row), flush=True)
                rows.append(row)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "lr_sweep.json"), "w") as f:
        json.dump({"base": base, "runs": rows}, f, indent=1)
    cmd = "nice python bench/tiny_workload/lr_sweep.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "cache"
    )
    text = markdown(rows, base, cmd, args.steps)
    with open(os.path.join(args.out, "lr_sweep.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
