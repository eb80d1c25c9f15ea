"""Try jfhpo option sets on suite problems before a full suite run: mean and worst regret at
1.5, 3, 5 and 10 full target runs over a few seeds, one line per option set.

    python bench/suite/variants.py --seeds 12 --problems synthetic-b0.5 \\
        --variant before='{"anchor": "none", "target_search": "gp"}' --variant default='{}'

Each trajectory is the suite's (``loop.trajectory`` with the default stopping rules, checkpoint
reuse, the suite's light GP settings, one study per budget told that budget, and the answer
accounting of ``Trajectory.result_at``), so a line here is what the suite's ``jfhpo`` row would
show for those seeds. Two worker processes.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "compare"))  # methods.py
sys.path.insert(0, str(HERE))  # before bench/compare: both have a run.py

from run import FAST, get_problem  # noqa: E402

BUDGETS = (1.5, 3.0, 5.0, 10.0)


def one(args: tuple[str, int, dict[str, Any], str | None, tuple[float, ...]]
        ) -> tuple[str, dict[float, float]]:
    """One study per budget: its regret there."""
    import torch
    from loop import trajectory

    from jfhpo.optimizers.base import get_optimizer
    from jfhpo.stopping.factory import build_rules

    torch.set_num_threads(1)
    problem, seed, options, recording, budgets = args
    p = get_problem(problem, recording)
    out = {}
    for b in budgets:  # each budget its own study, told that budget (as the suite runs jfhpo)
        opt = get_optimizer("jfhpo")({**FAST, **options})
        traj = trajectory(p, opt, seed, b * p.full_cost, build_rules({}), True, 80)
        out[b] = p.best - traj.result_at(b * p.full_cost)[0]
    return problem, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--problems", nargs="+", default=["synthetic-b0.5"])
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="an option set for the jfhpo optimizer (repeatable)")
    ap.add_argument("--recording", default=None, help="replay recording (default: packaged)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    args = ap.parse_args(argv)
    variants = [(v.partition("=")[0], json.loads(v.partition("=")[2] or "{}"))
                for v in args.variant] or [("default", {})]
    budgets = tuple(args.budgets)
    print(f"mean/worst regret at {', '.join(f'{b:g}' for b in budgets)} target runs, "
          f"{args.seeds} seeds")
    with ProcessPoolExecutor(args.workers) as pool:
        for name, options in variants:
            jobs = [(p, s, options, args.recording, budgets) for p in args.problems
                    for s in range(args.seeds)]
            res: dict[str, list[dict[float, float]]] = {}
            for problem, regret in pool.map(one, jobs):
                res.setdefault(problem, []).append(regret)
            cells = []
            for problem in args.problems:
                rs = res[problem]
                cells.append(problem + " " + " ".join(
                    f"{sum(r[b] for r in rs) / len(rs):.3f}/{max(r[b] for r in rs):.2f}"
                    for b in budgets))
            print(f"{name}: " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
