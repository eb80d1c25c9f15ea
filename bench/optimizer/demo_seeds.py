"""Run the demo study (examples/demo.yaml) over several seeds: the answer against the recipe.

    python bench/optimizer/demo_seeds.py [--seeds 0 1 2] [--study examples/demo.yaml] \
        [--out bench/optimizer/results/demo_seeds]

Each seed runs ``jfhpo run STUDY --seed S --out DIR/seed-S --quiet`` as a user would (a real
study: real tiny models, real TRL), then reads ``jfhpo best DIR/seed-S --json`` and the study's
segments (how much of the budget the search phase spent). Writes ``demo_seeds.md``/``.csv``: per
seed the answer's score on the target, the recipe's confirmed score, their difference, the search's
share of the spent budget, and the mean and spread (min..max) of the difference over seeds.
Each seed takes several minutes on two idle cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any


def search_share(folder: Path) -> tuple[float, float]:
    """(compute spent by search-phase segments, by all segments) from the study's database."""
    con = sqlite3.connect(folder / "study.sqlite")
    try:
        rows = con.execute(
            "SELECT r.phase, s.cost FROM segments s JOIN runs r ON r.id = s.run_id"
        ).fetchall()
    finally:
        con.close()
    total = sum(c or 0.0 for _, c in rows)
    search = sum(c or 0.0 for p, c in rows if str(p).lower() in ("0", "search"))
    return search, total


def run_seed(study: Path, seed: int, out: Path) -> dict[str, Any]:
    folder = out / f"seed-{seed}"
    cmd = [sys.executable, "-m", "jfhpo", "run", str(study), "--seed", str(seed), "--out",
           str(folder), "--quiet"]
    if folder.exists():
        raise SystemExit(f"{folder} exists: remove it or pick another --out")
    subprocess.run(cmd, check=True)
    best = json.loads(subprocess.run([sys.executable, "-m", "jfhpo", "best", str(folder), "--json"],
                                     check=True, capture_output=True, text=True).stdout)
    search, total = search_share(folder)
    recipe = best.get("recipe_score")
    return {"seed": seed, "score": best["score"], "recipe_score": recipe,
            "gain": None if recipe is None else best["score"] - recipe,
            "search_spent": round(search, 1), "total_spent": round(total, 1),
            "search_share": round(search / total, 3) if total else None, "how": best.get("how")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--study", type=Path, default=Path("examples/demo.yaml"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "demo_seeds")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in args.seeds:
        rows.append(run_seed(args.study, s, args.out))
        print(rows[-1], flush=True)
    with open(args.out / "demo_seeds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    gains = [r["gain"] for r in rows if r["gain"] is not None]
    lines = ["# The demo over seeds: answer vs recipe", "",
             "Command: `python bench/optimizer/demo_seeds.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
             "| seed | answer | recipe | answer - recipe | search share of spent budget |",
             "|---|---|---|---|---|"]
    for r in rows:
        rec = "" if r["recipe_score"] is None else f"{r['recipe_score']:.4f}"
        gain = "" if r["gain"] is None else f"{r['gain']:+.4f}"
        lines.append(f"| {r['seed']} | {r['score']:.4f} | {rec} | {gain} | {r['search_share']} |")
    if gains:
        lines += ["", f"Mean answer - recipe: {statistics.mean(gains):+.4f} "
                  f"(min {min(gains):+.4f}, max {max(gains):+.4f}) over {len(gains)} seeds."]
    (args.out / "demo_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
