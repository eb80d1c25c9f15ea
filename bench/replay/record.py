"""Record real tiny GRPO learning curves over a fixed Sobol design, for the replay backend.

Every run goes through the tiny backend's own ``run_segment`` (TRL's GRPOTrainer on the built-in
arithmetic task), one segment from step 0 to the full budget, with a reporter that keeps every
step's canonical metrics (and the evaluation metrics every ``--eval-every`` steps) and always
answers CONTINUE, so each curve is what would have happened without early stopping. The stopping
rules of a replayed study then see these curves step by step.

Design: ``--configs`` points of a scrambled Sobol sequence (seeded, so the design is fixed) in the
unit cube of ``SPACE``, decoded with jfhpo's own ``SearchSpace`` (log scale where declared). Every
configuration runs on every rung of the ladder; the rungs in ``--two-seed-rungs`` run with training
seeds 0 and 1, the others with seed 0. Work is ordered configuration by configuration (all rungs and
seeds of one before the next), so a partial recording is a complete recording of fewer configs.

Journal: one JSON line per finished run, appended and fsync'ed by the parent process. A killed
recorder loses only the runs in flight; ``--resume`` skips every (config, rung, seed) already in
the journal or in the committed chunks (``bench/replay/chunks.py`` cuts those from the journal).

Command (the one behind the committed recording; see bench/replay/README.md)::

    nohup nice -n 19 python bench/replay/record.py --resume >> bench/replay/record.log 2>&1 &
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_JOURNAL = HERE / "data" / "journal.jsonl"
CHUNK_DIR = HERE / "data"

#: the searched hyperparameters (names are the tiny backend's / TRL's), as a study's ``space:``
SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 3.0e-6, "high": 1.0e-3, "log": True},
    "beta": {"type": "float", "low": 1.0e-4, "high": 0.1, "log": True},
    "num_generations": {"type": "int", "low": 4, "high": 16, "log": True},
    "temperature": {"type": "float", "low": 0.6, "high": 1.4},
}
RUNGS = ("50k", "200k", "1m", "4m")
DESIGN_SEED = 20261126


def search_space() -> Any:
    """The design's SearchSpace (jfhpo's own encoding, shared with the replay backend)."""
    from jfhpo.space import FloatParam, IntParam, SearchSpace

    params: list[Any] = []
    for name, p in SPACE.items():
        if p["type"] == "float":
            params.append(FloatParam(name, float(p["low"]), float(p["high"]), bool(p.get("log"))))
        else:
            params.append(IntParam(name, int(p["low"]), int(p["high"]), bool(p.get("log"))))
    return SearchSpace(params)


def design(n: int, seed: int = DESIGN_SEED) -> list[dict[str, Any]]:
    """``n`` configurations: scrambled Sobol points decoded by the search space; floats rounded
    to 4 significant digits so the journal shows readable values."""
    from scipy.stats import qmc

    space = search_space()
    points = qmc.Sobol(d=space.dim, scramble=True, seed=seed).random(n)
    out = []
    for u in points:
        cfg = space.decode(u)
        out.append({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in cfg.items()})
    return out


def jobs(configs: list[dict[str, Any]], two_seed: set[str]) -> Iterator[tuple[int, str, int]]:
    """(config index, rung, seed) in recording order: config by config, the longest runs of a
    config first so two workers stay busy."""
    for i in range(len(configs)):
        for rung in reversed(RUNGS):
            for seed in (0, 1) if rung in two_seed else (0,):
                yield i, rung, seed


def _clean(metrics: Mapping[str, float]) -> dict[str, float | str]:
    """Metrics for strict JSON: 6 significant digits, non-finite values as 'nan'/'inf'/'-inf'."""
    out: dict[str, float | str] = {}
    for k, v in metrics.items():
        f = float(v)
        out[k] = float(f"{f:.6g}") if math.isfinite(f) else str(f)
    return out


# ---- worker side -------------------------------------------------------------------------------
_BACKEND: Any = None


def _init_worker(options: dict[str, Any]) -> None:
    """Spawned worker: one torch thread, the tiny backend built once."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    global _BACKEND
    from jfhpo.backends.base import get_backend

    _BACKEND = get_backend("tiny")(options)
    _BACKEND.setup_worker(1)


def run_one(
    config_id: int,
    config: dict[str, Any],
    rung_name: str,
    params: int,
    seed: int,
    steps: int,
    eval_every: int,
    cache_dir: str,
) -> dict[str, Any]:
    """Train one run from step 0 to ``steps`` through the tiny backend; return its curve."""
    from jfhpo.backends.base import SegmentTask
    from jfhpo.fidelity import ModelRung
    from jfhpo.records import Verdict

    rung = ModelRung(rung_name, params=float(params), build={"size": rung_name})
    rows: list[dict[str, Any]] = []
    last_wall, last_cpu = time.perf_counter(), time.process_time()

    def report(step: int, metrics: Mapping[str, float]) -> Verdict:
        nonlocal last_wall, last_cpu
        wall, cpu = time.perf_counter(), time.process_time()
        rows.append(
            {
                "step": step,
                "wall": round(wall - last_wall, 4),
                "cpu": round(cpu - last_cpu, 4),
                "metrics": _clean(metrics),
            }
        )
        last_wall, last_cpu = wall, cpu
        return Verdict.CONTINUE

    ckpt = tempfile.mkdtemp(prefix="jfhpo-replay-rec-")
    task = SegmentTask(
        run_id=config_id,
        segment_id=0,
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
    w0, c0 = time.perf_counter(), time.process_time()
    error = None
    final: dict[str, float | str] = {}
    cost = float("nan")
    try:
        outcome = _BACKEND.run_segment(task, report)
        cost, final = float(outcome.cost), _clean(outcome.final_metrics)
        end_step = outcome.end_step
    except Exception as exc:  # a crashed run is a data point too
        error, end_step = f"{type(exc).__name__}: {exc}", (rows[-1]["step"] if rows else 0)
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
    return {
        "config_id": config_id,
        "config": dict(config),
        "effective_config": _BACKEND.resolve_config(config),
        "model": rung_name,
        "params": params,
        "seed": seed,
        "steps": steps,
        "eval_every": eval_every,
        "end_step": end_step,
        "segment_cost": round(cost, 4) if math.isfinite(cost) else None,  # backend's own (wall)
        "wall_seconds": round(time.perf_counter() - w0, 4),
        "cpu_seconds": round(time.process_time() - c0, 4),
        "final_metrics": final,
        "error": error,
        "curve": rows,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ---- parent side -------------------------------------------------------------------------------
def run_key(rec: Mapping[str, Any]) -> tuple[int, str, int]:
    return int(rec["config_id"]), str(rec["model"]), int(rec["seed"])


def read_records(journal: Path, chunk_dir: Path = CHUNK_DIR) -> list[dict[str, Any]]:
    """Every run recorded so far: the committed chunks plus the journal, one per key (a torn last
    journal line from a killed recorder is skipped)."""
    seen: dict[tuple[int, str, int], dict[str, Any]] = {}
    for chunk in sorted(chunk_dir.glob("part-*.jsonl.gz")):
        with gzip.open(chunk, "rt") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    if rec.get("kind") == "run":
                        seen[run_key(rec)] = rec
    if journal.exists():
        with open(journal) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if rec.get("kind") == "run":
                    seen[run_key(rec)] = rec
    return list(seen.values())


def _append(journal: Path, rec: Mapping[str, Any]) -> None:
    with open(journal, "a") as f:
        f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", type=int, default=64, help="design size (a power of 2)")
    ap.add_argument("--only-configs", type=int, default=0, help="record only the first N (timing)")
    ap.add_argument("--steps", type=int, default=90)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--two-seed-rungs", default="1m,4m")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--journal", type=Path, default=DEFAULT_JOURNAL)
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/jfhpo"))
    ap.add_argument("--resume", action="store_true", help="skip runs already recorded")
    args = ap.parse_args(argv)

    from jfhpo.backends.base import get_backend
    from jfhpo.backends.tiny.models import ladder_params
    from jfhpo.fidelity import ModelLadder, ModelRung

    options: dict[str, Any] = {"task": "add2", "eval_problems": 500}
    configs = design(args.configs)
    two_seed = set(filter(None, args.two_seed_rungs.split(",")))
    params = ladder_params()
    args.journal.parent.mkdir(parents=True, exist_ok=True)
    done = {run_key(r) for r in read_records(args.journal)} if args.resume else set()
    if args.journal.exists() and not args.resume and args.journal.stat().st_size:
        print(f"{args.journal} exists: pass --resume to continue it", file=sys.stderr)
        return 2
    todo = [
        j
        for j in jobs(configs, two_seed)
        if j not in done and (not args.only_configs or j[0] < args.only_configs)
    ]
    header = {
        "kind": "session",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "commit": _git_commit(),
        "host": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "workers": args.workers,
        "threads_per_worker": 1,
        "backend": "tiny",
        "backend_options": options,
        "space": SPACE,
        "design_seed": DESIGN_SEED,
        "configs": configs,
        "rungs": {r: params[r] for r in RUNGS},
        "two_seed_rungs": sorted(two_seed),
        "steps": args.steps,
        "eval_every": args.eval_every,
        "todo": len(todo),
        "done_before": len(done),
    }
    _append(args.journal, header)
    print(f"{len(done)} runs recorded before, {len(todo)} to do", flush=True)

    # base models first (cached and shared; a file lock guards concurrent builders)
    backend = get_backend("tiny")(options)
    ladder = ModelLadder([ModelRung(r, params=float(params[r]), build={"size": r}) for r in RUNGS])
    backend.prepare(ladder, args.cache_dir, lambda m: print(m, flush=True))

    import multiprocessing as mp

    pending: dict[Future[dict[str, Any]], tuple[int, str, int]] = {}
    it = iter(todo)
    with ProcessPoolExecutor(
        args.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(options,)
    ) as pool:

        def fill() -> None:
            while len(pending) < args.workers:
                job = next(it, None)
                if job is None:
                    return
                i, rung, seed = job
                fut = pool.submit(
                    run_one, i, configs[i], rung, params[rung], seed, args.steps,
                    args.eval_every, args.cache_dir,
                )
                pending[fut] = job

        fill()
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                try:
                    rec = fut.result()
                except Exception as exc:  # the worker died; record nothing, say why
                    print(f"run {job} failed in the pool: {exc!r}", flush=True)
                    continue
                _append(args.journal, {"kind": "run", **rec})
                acc = rec["final_metrics"].get("eval_accuracy")
                print(
                    f"{rec['finished_at']} config {job[0]} {job[1]} seed {job[2]}: "
                    f"cpu {rec['cpu_seconds']:.0f}s wall {rec['wall_seconds']:.0f}s "
                    f"eval_accuracy {acc} {rec['error'] or ''}",
                    flush=True,
                )
            fill()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
