"""Smoke tests of the comparison benchmark (bench/compare/run.py --quick).

The CI smoke test runs the SYNTHETIC workload (analytic curves: the whole quick run takes well
under two minutes on two CPU cores). The tiny workload (real GRPO training) takes longer than CI
allows, so its quick run is a second test, marked ``slow`` and skipped unless JFHPO_SLOW=1.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "compare"


def _load() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_compare_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "quick"
    run = _load()
    rc = run.main(["--workload", "synthetic", "--quick", "--budget", "300",
                   "--methods", "recipe", "random", "bohb", "jfhpo", "--out", str(out)])
    assert rc == 0
    report = (out / "report.md").read_text()
    for needle in ("git commit", "Per method", "Paired tests", "Ablations", "Spearman"):
        assert needle in report
    assert (out / "best_so_far.png").stat().st_size > 1000
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["recipe", "random", "bohb", "jfhpo"]
    data = json.loads((out / "rows.json").read_text())
    for r in data["rows"]:
        assert len(r["target_scores"]) == 2  # quick: two training seeds per chosen configuration
    assert all(c["n_configs"] == 10 for c in data["transfer"])
    searched = [r for r in data["rows"] if r["method"] != "recipe"]
    assert all(r["runs"] > 0 and r["segments"] > 0 for r in searched)


@pytest.mark.skipif(os.environ.get("JFHPO_SLOW") != "1", reason="slow: set JFHPO_SLOW=1")
def test_quick_tiny(tmp_path: Path) -> None:
    run = _load()
    out = tmp_path / "quick-tiny"
    rc = run.main(["--workload", "tiny", "--quick", "--budget", "60", "--methods", "recipe",
                   "random", "jfhpo", "--transfer-configs", "0", "--out", str(out)])
    assert rc == 0
    assert (out / "report.md").exists()


def test_resume_reuses_finished_studies_and_redoes_the_rest(tmp_path: Path) -> None:
    """A benchmark killed midway continues with --resume: what finished is read back, not rerun."""
    out = tmp_path / "resumed"
    args = ["--workload", "synthetic", "--quick", "--budget", "200", "--methods", "recipe",
            "random", "hyperband", "--transfer-configs", "3", "--out", str(out)]
    run = _load()
    assert run.main(args) == 0
    first = json.loads((out / "rows.json").read_text())
    journal = (out / "progress.jsonl").read_text().splitlines()
    keys = [json.loads(line)["key"] for line in journal]
    assert {"search/random/0", "search/hyperband/0", "transfer"} <= set(keys)
    # as if killed while hyperband's study ran: only recipe and random had been journalled
    kept = [line for line in journal if json.loads(line)["key"] in ("search/recipe/0",
                                                                      "search/random/0")]
    (out / "progress.jsonl").write_text("\n".join(kept) + "\n")
    marker = out / "studies" / "random-s0" / "kept"
    marker.write_text("")
    (out / "rows.json").unlink()
    assert _load().main(args) == 2  # without --resume the folder is refused
    assert _load().main([*args, "--resume"]) == 0
    assert marker.exists()  # the finished study was not rerun
    second = json.loads((out / "rows.json").read_text())
    by_method = {r["method"]: r for r in second["rows"]}
    assert by_method["random"] == next(r for r in first["rows"] if r["method"] == "random")
    assert by_method["hyperband"]["runs"] > 0 and len(by_method["hyperband"]["target_scores"]) == 2
    assert len(second["transfer"]) == len(first["transfer"])
