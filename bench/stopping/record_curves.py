"""Record full training curves of the built-in tiny GRPO workload over a hyperparameter sweep.

Drives the tiny backend directly (no tuner, no executor): one segment per run from step 0 to
``--steps``, with a reporter that stores every (step, metrics, seconds since the previous report)
and always answers CONTINUE, so each curve shows what would have happened without early stopping.
The sweep is learning rate x temperature (x model size x seed); the high learning rates are there
to make runs diverge. The result is one JSON file that ``evaluate.py`` replays through the rules
and from which the test fixtures are cut.

Example (the command behind bench/stopping/results.md)::

    nice python bench/stopping/record_curves.py --out bench/stopping/curves.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jfhpo.backends.base import SegmentTask, get_backend
from jfhpo.fidelity import ModelLadder, ModelRung
from jfhpo.records import Verdict


def _parse_value(text: str) -> Any:
    """A command-line option value: JSON when it parses (numbers, true/false), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _clean(metrics: Mapping[str, float]) -> dict[str, float | str]:
    """Metrics for JSON: 6 significant digits; non-finite values as the strings 'nan', 'inf',
    '-inf' (strict JSON)."""
    out: dict[str, float | str] = {}
    for k, v in metrics.items():
        f = float(v)
        out[k] = float(f"{f:.6g}") if math.isfinite(f) else str(f)
    return out


def record_run(
    backend: Any,
    rung: ModelRung,
    config: Mapping[str, Any],
    steps: int,
    eval_every: int,
    seed: int,
    run_id: int,
    cache_dir: str,
) -> dict[str, Any]:
    """Train one run for ``steps`` steps and return its full curve."""
    rows: list[dict[str, Any]] = []
    last = time.perf_counter()

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        nonlocal last
        now = time.perf_counter()
        rows.append({"step": step, "seconds": round(now - last, 4), "metrics": _clean(metrics)})
        last = now
        return Verdict.CONTINUE

    ckpt = tempfile.mkdtemp(prefix="jfhpo-curve-")
    try:
        task = SegmentTask(
            run_id=run_id,
            segment_id=run_id,
            config=dict(config),
            model=rung,
            start_step=0,
            target_step=steps,
            max_steps=steps,
            seed=seed,
            checkpoint_dir=ckpt,
            cache_dir=cache_dir,
            eval_every=eval_every,
        )
        started = time.perf_counter()
        error = None
        try:
            outcome = backend.run_segment(task, report)
            cost, final = outcome.cost, _clean(outcome.final_metrics)
        except Exception as exc:  # a crashed run is a data point too
            cost, final, error = time.perf_counter() - started, {}, f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
    return {
        "run_id": run_id,
        "model": rung.name,
        "config": dict(config),
        "seed": seed,
        "cost": cost,
        "final_metrics": final,
        "error": error,
        "curve": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="50k", help="comma-separated tiny model sizes")
    ap.add_argument("--lrs", default="3e-4,1e-3,3e-3,1e-2,3e-2", help="learning rates")
    ap.add_argument("--temperatures", default="0.7,1.0,1.5", help="sampling temperatures")
    ap.add_argument("--seeds", default="0", help="run seeds")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/jfhpo"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed config value")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="backend option")
    ap.add_argument("--out", type=Path, default=Path("bench/stopping/curves.json"))
    args = ap.parse_args(argv)

    fixed = {k: _parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    options = {k: _parse_value(v) for k, v in (s.split("=", 1) for s in args.option)}
    cls = get_backend("tiny")
    backend = cls(options)
    backend.setup_worker(args.threads)
    from jfhpo.backends.tiny.models import ladder_params

    params = ladder_params()
    sizes = args.sizes.split(",")
    ladder = ModelLadder([ModelRung(s, params=float(params[s]), build={"size": s}) for s in sizes])
    backend.prepare(ladder, args.cache_dir, lambda msg: print(msg, file=sys.stderr))

    data: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "backend": "tiny",
        "backend_options": options,
        "recipe": cls().recipe(),
        "steps": args.steps,
        "eval_every": args.eval_every,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "runs": [],
    }
    run_id = 0
    for size in sizes:
        for seed in (int(s) for s in args.seeds.split(",")):
            for lr in (float(x) for x in args.lrs.split(",")):
                for temp in (float(x) for x in args.temperatures.split(",")):
                    run_id += 1
                    config = {**cls().recipe(), **fixed, "learning_rate": lr, "temperature": temp}
                    t0 = time.perf_counter()
                    run = record_run(
                        backend,
                        ladder[size],
                        config,
                        args.steps,
                        args.eval_every,
                        seed,
                        run_id,
                        args.cache_dir,
                    )
                    data["runs"].append(run)
                    last = run["curve"][-1]["metrics"] if run["curve"] else {}
                    print(
                        f"run {run_id} size={size} seed={seed} lr={lr:g} T={temp:g}: "
                        f"{len(run['curve'])} steps in {time.perf_counter() - t0:.1f}s, "
                        f"final {last.get('eval_accuracy', '-')}, error={run['error']}",
                        file=sys.stderr,
                        flush=True,
                    )
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    tmp = args.out.with_suffix(".tmp")
                    tmp.write_text(json.dumps(data, indent=None, separators=(",", ":")))
                    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
