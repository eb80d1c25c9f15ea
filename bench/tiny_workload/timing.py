"""Time the tiny workload: base-model preparation and GRPO seconds per step, per ladder size.

For every size: build (or reuse) the SFT base model, then run one GRPO segment of ``--steps``
steps with the recipe configuration in this process (one torch thread), and record wall and CPU
seconds per step, the segment's fixed overhead (trainer construction, model load, final
evaluation, checkpoint) and the base model's accuracy. Writes ``results/timing.md`` and
``results/timing.json``.

    nice python bench/tiny_workload/timing.py --out bench/tiny_workload/results
"""

from __future__ import annotations

import argparse
import itertools
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


def time_size(backend: TinyGRPOBackend, size: str, steps: int, cache: str) -> dict[str, Any]:
    rung = ModelRung(size, float(param_count(SIZES[size])), build={"size": size})
    spec = backend.base_spec(rung)
    t0, c0 = time.perf_counter(), time.process_time()
    _, manifest = ensure_base_model(spec, backend.splits, cache, print)
    prep_wall, prep_cpu = time.perf_counter() - t0, time.process_time() - c0
    stamps: list[tuple[float, float]] = []

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        stamps.append((time.perf_counter(), time.process_time()))
        return Verdict.CONTINUE

    with tempfile.TemporaryDirectory() as ckpt:
        task = SegmentTask(
            run_id=0,
            segment_id=0,
            config={},
            model=rung,
            start_step=0,
            target_step=steps,
            max_steps=steps,
            seed=0,
            checkpoint_dir=ckpt,
            cache_dir=cache,
        )
        c1 = time.process_time()
        out = backend.run_segment(task, report)
        seg_cpu = time.process_time() - c1
    # per-step times from consecutive reports (the last one includes the final evaluation)
    pairs = list(itertools.pairwise(stamps[:-1]))
    walls = [b[0] - a[0] for a, b in pairs]
    cpus = [b[1] - a[1] for a, b in pairs]
    step_wall, step_cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "size": size,
        "params": int(rung.params),
        "sft_steps": manifest["sft"]["steps"],
        "sft_batch": manifest["sft"]["batch_size"],
        "sft_lr": manifest["sft"]["lr"],
        "sft_seconds": manifest["sft_seconds"],
        "sft_cpu_seconds": manifest.get("sft_cpu_seconds", float("nan")),
        "prepare_wall": round(prep_wall, 2),
        "prepare_cpu": round(prep_cpu, 2),
        "base_greedy": manifest["greedy_accuracy"],
        "base_sampled": manifest["sampled_accuracy"],
        "step_wall": round(step_wall, 4),
        "step_cpu": round(step_cpu, 4),
        "segment_steps": steps,
        "segment_wall": round(out.cost, 2),
        "segment_cpu": round(seg_cpu, 2),
        "overhead_wall": round(out.cost - steps * step_wall, 2),
        "final_eval_accuracy": out.final_metrics.get("eval_accuracy"),
    }


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    ref = next((r for r in rows if r["size"] == "50k"), rows[0])
    lines = [
        "# Tiny workload timing",
        "",
        f"Command: `{command}`  ",
        f"Commit: {git_commit()}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or '?'}; "
        "one torch thread; other jobs shared the CPU, so CPU seconds are the steadier numbers.",
        "",
        "| size | params | SFT steps x batch @ LR | SFT wall s | SFT CPU s | base greedy "
        "| base sampled | GRPO s/step wall | s/step CPU | cost vs 50k | segment wall s "
        "(steps) | overhead s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['params']:,} | {r['sft_steps']} x {r['sft_batch']} @ "
            f"{r['sft_lr']:g} | {r['sft_seconds']:.1f} | {r['sft_cpu_seconds']:.1f} | "
            f"{r['base_greedy']:.1%} | {r['base_sampled']:.1%} | {r['step_wall']:.3f} | "
            f"{r['step_cpu']:.3f} | {r['step_cpu'] / ref['step_cpu']:.2f} | "
            f"{r['segment_wall']:.1f} ({r['segment_steps']}) | {r['overhead_wall']:.1f} |"
        )
    lines += [
        "",
        "SFT seconds are those measured when the base model was built (its manifest); the "
        "base model of a size is built once and cached. "
        "GRPO step: 16 prompts x 8 completions (the recipe), max 5 new tokens, beta=0.001 "
        "(a reference model forward per step). Overhead: trainer construction, model load, "
        "the final evaluation (500 problems, sampled and greedy) and the checkpoint write.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10k,50k,200k,1m,4m")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/jfhpo"))
    ap.add_argument("--out", default="bench/tiny_workload/results")
    args = ap.parse_args()
    backend = TinyGRPOBackend({"task": "add2"})
    backend.setup_worker(1)
    rows = [time_size(backend, s, args.steps, args.cache) for s in args.sizes.split(",")]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "timing.json"), "w") as f:
        json.dump(rows, f, indent=1)
    cmd = "nice python bench/tiny_workload/timing.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if k != "cache"
    )
    with open(os.path.join(args.out, "timing.md"), "w") as f:
        f.write(markdown(rows, cmd))
    print(markdown(rows, cmd))


if __name__ == "__main__":
    main()
