"""Cut test fixtures out of a record_curves.py file: chosen runs, same JSON shape, fewer digits.

Each ``--pick NAME=ID[,ID...]`` writes ``tests/stopping/fixtures/NAME.json`` holding those runs
(1-based run ids as in evaluate.py's report), the command that recorded the curves and the
command that cut the fixture, so a fixture can always be regenerated.

Example::

    python bench/stopping/make_fixtures.py bench/stopping/curves.json \\
        --pick sweep_50k=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _round(v: Any) -> Any:
    return float(f"{v:.4g}") if isinstance(v, float) else v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("curves", type=Path)
    ap.add_argument("--pick", action="append", default=[], metavar="NAME=ID[,ID...]")
    ap.add_argument("--out-dir", type=Path, default=Path("tests/stopping/fixtures"))
    ap.add_argument(
        "--drop",
        default="lr,clip_frac,loss,reward_std,train_accuracy,response_length",
        help="comma-separated metrics left out to keep fixtures small",
    )
    args = ap.parse_args(argv)
    data = json.loads(args.curves.read_text())
    drop = set(args.drop.split(",")) if args.drop else set()
    by_id = {i + 1: r for i, r in enumerate(data["runs"])}
    me = "python bench/stopping/make_fixtures.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for pick in args.pick:
        name, ids = pick.split("=", 1)
        runs = []
        for rid in (int(x) for x in ids.split(",")):
            run = dict(by_id[rid])
            run["curve"] = [
                {
                    "step": row["step"],
                    "seconds": row["seconds"],
                    "metrics": {k: _round(v) for k, v in row["metrics"].items() if k not in drop},
                }
                for row in run["curve"]
            ]
            run["source_id"] = rid
            runs.append(run)
        out = {
            "recorded_by": data.get("command", ""),
            "command": me,
            "recipe": data.get("recipe", {}),
            "runs": runs,
        }
        path = args.out_dir / f"{name}.json"
        path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
        print(f"{path}: {len(runs)} runs, {path.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
