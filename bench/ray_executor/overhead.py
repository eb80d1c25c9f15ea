"""Per-segment overhead of the Ray executor against the local one, on the same synthetic study.

The synthetic backend with ``sleep: 0`` computes a step in microseconds, so a segment's wall time
as the tuner records it (from submission to the handled end event: ``finished - started`` in the
segments table) is almost all executor overhead. Both executors run the identical study (same seed,
so the same segments); per executor and repeat the script fits ``wall = fixed + per_step * steps``
over the segments and reports the median wall per segment with its spread (10th-90th percentile),
the fixed part (dispatch and return of one segment) and the per-step part (one observation and its
verdict, the metric/verdict round trip).

The Ray cluster is a head node started by this script on 127.0.0.1 (in its own process group,
stopped at the end) unless ``--address`` names one.

Usage (from the repository root):
    nice .venv/bin/python bench/ray_executor/overhead.py --repeats 3 --out bench/ray_executor/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jfhpo.backends.synthetic import SyntheticBackend
from jfhpo.progress import ProgressSink
from jfhpo.spec import parse_spec
from jfhpo.study import Study
from jfhpo.tuner import run_study


def study_dict(workers: int, budget: float, executor: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load(SyntheticBackend.example_study())
    data.update(
        backend={"name": "synthetic", "options": {"sleep": 0.0}},
        models=[{"name": "50k", "params": 5e4, "cost": 1.0},
                {"name": "4m", "params": 4e6, "cost": 4.0}],
        steps={"min": 3, "max": 27, "eta": 3}, eval_every=3, workers=workers,
        optimizer={"name": "hyperband", "options": {"model": "50k"}},
        budget={"seconds": budget}, confirm={"top_k": 1, "fraction": 0.1}, executor=executor,
    )
    return data


def start_head(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_bin = str(Path(sys.executable).with_name("ray"))
    log = Path(tmp, "start.txt")
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port",
         str(port), "--num-cpus", "2", "--num-gpus", "2", "--include-dashboard=false",
         "--temp-dir", tmp],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_TMPDIR": tmp})
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.2)
    return proc, f"127.0.0.1:{port}"


def stop_head(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_once(folder: Path, data: dict[str, Any]) -> dict[str, Any]:
    spec = parse_spec(data)
    study = Study.create(folder, spec, "eval_accuracy")
    t0 = time.monotonic()
    run_study(study, ProgressSink())
    total = time.monotonic() - t0
    study.close()
    db = sqlite3.connect(folder / "study.sqlite")
    rows = db.execute("SELECT start_step, end_step, started, finished FROM segments "
                      "ORDER BY id").fetchall()
    db.close()
    steps = np.array([r[1] - r[0] for r in rows], dtype=float)
    wall = np.array([r[3] - r[2] for r in rows], dtype=float)
    per_step, fixed = np.polyfit(steps, wall, 1)
    return {
        "segments": len(rows), "steps": int(steps.sum()), "study_wall_s": total,
        "wall_ms": (wall * 1e3).tolist(), "steps_per_segment": steps.tolist(),
        "median_ms": float(np.median(wall) * 1e3), "p10_ms": float(np.percentile(wall, 10) * 1e3),
        "p90_ms": float(np.percentile(wall, 90) * 1e3), "fixed_ms": float(fixed * 1e3),
        "per_step_ms": float(per_step * 1e3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--budget", type=float, default=200.0)
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: start one)")
    ap.add_argument("--out", default="bench/ray_executor/results")
    args = ap.parse_args()
    import ray

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="jfbench", dir="/tmp")
    head = None
    address = args.address
    if address is None:
        head, address = start_head(tmp)
    results: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
    try:
        for rep in range(args.repeats):
            for name, ex in (("local", {"name": "local"}), ("ray", {"name": "ray", "address": address})):
                r = run_once(Path(tmp, f"{name}-{rep}"), study_dict(args.workers, args.budget, ex))
                results[name].append(r)
                print(f"{name} repeat {rep}: {r['segments']} segments, median "
                      f"{r['median_ms']:.1f} ms, fixed {r['fixed_ms']:.1f} ms, per step "
                      f"{r['per_step_ms']:.2f} ms", flush=True)
    finally:
        if head is not None:
            stop_head(head)
    write(out, args, results, ray.__version__)


def write(out: Path, args: argparse.Namespace, results: dict[str, list[dict[str, Any]]],
          ray_version: str) -> None:
    cmd = ("nice .venv/bin/python bench/ray_executor/overhead.py --repeats "
           f"{args.repeats} --workers {args.workers} --budget {args.budget:g} --out {args.out}")
    load = os.getloadavg()
    meta = {"command": cmd, "ray": ray_version, "python": platform.python_version(),
            "cpus": os.cpu_count(), "loadavg_at_end": load,
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()}
    (out / "overhead.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    lines = [
        "# Per-segment overhead: Ray executor vs local executor",
        "",
        f"Command: `{cmd}`  ",
        f"Code: commit {meta['commit']} (measured on that tree); Ray {ray_version}, Python "
        f"{meta['python']}  ",
        f"Machine: {meta['cpus']} CPU cores shared with other jobs (load average "
        f"{load[0]:.1f} at the end); Ray head node on 127.0.0.1 with 2 CPUs, no real GPUs.",
        "",
        "Study: the synthetic backend without sleep (a step costs microseconds), hyperband on a "
        f"50k proxy, 3-27 steps, eval every 3 steps, {args.workers} worker(s), the same seed for "
        "both executors (the same segments). Wall per segment = `finished - started` of the "
        "segments table (submission to handled end event). fixed/per step: least-squares fit of "
        "wall = fixed + per_step x steps over the segments of one run.",
        "",
        "| executor | repeat | segments | steps | median ms/segment | p10-p90 ms | fixed ms | "
        "per step ms | study wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, reps in results.items():
        for i, r in enumerate(reps):
            lines.append(f"| {name} | {i} | {r['segments']} | {r['steps']} | {r['median_ms']:.1f} | "
                         f"{r['p10_ms']:.1f}-{r['p90_ms']:.1f} | {r['fixed_ms']:.1f} | "
                         f"{r['per_step_ms']:.2f} | {r['study_wall_s']:.1f} |")
    lines += ["", "Median over repeats:", "",
              "| executor | median ms/segment | fixed ms | per step ms |", "|---|---|---|---|"]
    for name, reps in results.items():
        lines.append(f"| {name} | {statistics.median(r['median_ms'] for r in reps):.1f} | "
                     f"{statistics.median(r['fixed_ms'] for r in reps):.1f} | "
                     f"{statistics.median(r['per_step_ms'] for r in reps):.2f} |")
    (out / "overhead.md").write_text("\n".join(lines) + "\n")
    print((out / "overhead.md").read_text())


if __name__ == "__main__":
    main()
