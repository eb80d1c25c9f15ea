"""bench/optimizer/answer_rules.py: the four picks among one study's full-budget target runs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "optimizer"))

import answer_rules  # noqa: E402


def test_the_oracles_pick_bounds_the_other_two_and_the_engines_answer_is_the_studys() -> None:
    import asktell

    r = answer_rules.picks("syn-b0", "hyperband", 3.0, 0)
    assert set(r) == {"engine", "final", "confirm_margin", "oracle"}
    assert all(math.isfinite(v) and v >= -1e-9 for v in r.values())
    # (the engine's regret is rounded to 5 decimals in its row)
    assert r["oracle"] <= r["engine"] + 1e-5
    assert r["oracle"] <= min(r["final"], r["confirm_margin"]) + 1e-9
    assert r["engine"] == asktell.run_one("syn-b0", "hyperband", 3.0, 0)["regret"]
