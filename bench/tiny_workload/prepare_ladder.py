"""Time ``prepare()`` of the example study's ladder from an empty cache, with 2 processes.

This is the one-off cost a user pays before the first study on a machine (later studies reuse
the cache). Writes ``results/prepare.md``.

    nice python bench/tiny_workload/prepare_ladder.py --out bench/tiny_workload/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from gitinfo import git_commit  # bench/tiny_workload/gitinfo.py (the script's folder)

from jfhpo.backends.tiny import TinyGRPOBackend
from jfhpo.backends.tiny.base_models import read_manifest
from jfhpo.backends.tiny.models import SIZES, param_count
from jfhpo.fidelity import ModelLadder, ModelRung


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50k,200k,1m,4m")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/tiny_workload/results")
    args = ap.parse_args()
    rungs = [
        ModelRung(s, float(param_count(SIZES[s])), build={"size": s})
        for s in args.sizes.split(",")
    ]
    ladder = ModelLadder(rungs)
    backend = TinyGRPOBackend({"task": "add2", "prepare_workers": args.workers})
    log: list[str] = []

    def progress(msg: str) -> None:
        line = f"{time.perf_counter() - t0:6.1f} s  {msg}"
        log.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        backend.prepare(ladder, cache, progress)
        total = time.perf_counter() - t0
        manifests = [read_manifest(backend.base_spec(r).folder(cache), backend.base_spec(r).key())
                     for r in rungs]
    lines = [
        "# Preparing the example ladder's base models",
        "",
        f"Command: `nice python bench/tiny_workload/prepare_ladder.py --sizes {args.sizes} "
        f"--workers {args.workers}`  ",
        f"Commit: {git_commit()}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; one torch thread per process; "
        "other jobs shared the CPU during the run.",
        "",
        f"Total wall time: **{total:.0f} s** with {args.workers} processes. The sum of CPU seconds "
        "split over 2 processes is the time on an otherwise idle 2-core machine.",
        "",
        "| size | params | SFT steps x batch @ LR | SFT wall s | SFT CPU s | greedy acc "
        "| sampled acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r, m in zip(rungs, manifests):
        assert m is not None
        lines.append(
            f"| {r.name} | {int(r.params):,} | {m['sft']['steps']} x {m['sft']['batch_size']} @ "
            f"{m['sft']['lr']:g} | {m['sft_seconds']:.0f} | {m['sft_cpu_seconds']:.0f} | "
            f"{m['greedy_accuracy']:.1%} | "
            f"{m['sampled_accuracy']:.1%} |"
        )
    lines += ["", "Progress messages:", "", "```", *log, "```", ""]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "prepare.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(args.out, "prepare.json"), "w") as f:
        json.dump({"total_seconds": total, "manifests": manifests}, f, indent=1)


if __name__ == "__main__":
    main()
