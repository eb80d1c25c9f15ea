"""The live progress view against ``jfhpo status``, on real synthetic studies (inline executor).

The view must not compute figures of its own: at every redraw of a running study its budget,
best so far, segment counts, failures, runs in flight, stop reasons and transfer figures must be
what ``jfhpo status --json`` says at that moment, and what the real CLI says once it ended.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli, report_study_data, synthetic_study

from jfhpo.progress import PlainSink, ProgressSink, RichSink, Snapshot, closing_lines, snapshot
from jfhpo.report.text import status_dict
from jfhpo.results import Winner, study_results
from jfhpo.spec import parse_spec
from jfhpo.study import Study
from jfhpo.tuner import StudyAborted, run_study

_FLIGHT = re.compile(r"run (\d+) (\S+) step (\d+)/(\d+)$")
_STOP = re.compile(r"run (\d+) \((\S+)\) at step (\d+): (.+)$")


class Recorder(ProgressSink):
    """Keeps every snapshot the tuner shows, beside ``status --json``'s answer at that moment."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.seen: list[tuple[Snapshot, dict[str, Any]]] = []
        self.messages: list[str] = []
        self.winner: Winner | None = None

    def message(self, text: str) -> None:
        self.messages.append(text)

    def update(self, snap: Snapshot) -> None:
        self.seen.append((snap, json.loads(json.dumps(status_dict(self.study), default=str))))

    def finish(self, best: Winner | None) -> None:
        self.winner = best


def assert_agree(snap: Snapshot, st: dict[str, Any]) -> None:
    """``snap`` shows what the status dict ``st`` holds (its numbers, not its texts)."""
    b = st["budget"]
    assert snap.phase == st["phase"]
    assert snap.measure == b["measure"] == "compute"
    assert snap.budget_total == b["total"]
    assert snap.budget_spent == pytest.approx(b["spent_compute"], abs=1e-3)
    counts = st["segments"]
    assert snap.segments_done == counts["completed"] + counts["stopped"]
    assert snap.failures == counts["failed"]
    runs = {r["run_id"]: r for r in st["runs"]}
    flying = [_FLIGHT.match(line) for line in snap.in_flight]
    assert all(flying), snap.in_flight
    assert len(flying) == counts["running"] + counts["queued"]
    for m in flying:
        assert m is not None
        run = runs[int(m[1])]
        assert run["state"] in ("running", "queued") and run["model"] == m[2]
    if st["best"] is None:
        assert snap.best is None
    else:
        assert snap.best is not None
        assert (snap.best.run_id, snap.best.model, snap.best.steps, snap.best.score) == (
            st["best"]["run_id"], st["best"]["model"], st["best"]["steps"], st["best"]["score"])
    measured = [(t.small, t.large, t.spearman, t.kendall, t.n_configs)
                for t in snap.transfer if t.spearman is not None]
    assert measured == [(t["small"], t["large"], t["spearman"], t["kendall"], t["n_configs"])
                        for t in st["transfer"]]
    for line in snap.stops:
        m = _STOP.match(line)
        assert m is not None, line
        run = runs[int(m[1])]
        assert run["model"] == m[2]
        if run["state"] == "stopped":  # finished: status has its reason and where it stopped
            assert run["stop_reason"]["message"] == m[4]
            assert run["steps"] == int(m[3])
        else:  # a rule has just stopped it; it is winding down
            assert run["state"] == "running"
    stopped = sum(1 for r in st["runs"] if r["stop_reason"] is not None)
    assert len(snap.stops) >= min(stopped, 5)


def _run(folder: Path, data: dict[str, Any]) -> tuple[Recorder, dict[str, Any] | None]:
    study = Study.create(folder, parse_spec(data), "eval_accuracy")
    rec = Recorder(study)
    try:
        best = run_study(study, rec)
    finally:
        study.close()
    return rec, best


def test_live_view_equals_status_at_every_redraw_and_at_the_end(tmp_path: Path) -> None:
    data = report_study_data()  # three models, a stopping rule that fires, a confirmation
    data["executor"] = {"name": "inline"}
    data["optimizer"]["options"]["n_init"] = 8  # fewer GP fits: about 7 CPU-seconds in all
    data["budget"] = {"seconds": 600}
    rec, best = _run(tmp_path / "S", data)
    assert best is not None
    assert len(rec.seen) >= 10
    for snap, st in rec.seen:
        assert_agree(snap, st)
    # the study did what the view has to show: stops, a measured transfer, more than one phase
    assert any(snap.stops for snap, _ in rec.seen)
    assert any(t.spearman is not None for snap, _ in rec.seen for t in snap.transfer)
    assert {snap.phase for snap, _ in rec.seen} == {"search", "confirm"}
    spent = [snap.budget_spent for snap, _ in rec.seen]
    assert spent == sorted(spent) and spent[-1] > 0

    # the finished study: the live view of it against the real `jfhpo status --json`
    r = cli("status", str(tmp_path / "S"), "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    study = Study.open(tmp_path / "S")
    try:
        res = study_results(study)
    finally:
        study.close()
    final = snapshot(res)
    assert_agree(final, st)
    assert final.in_flight == ()
    assert rec.winner == res.winner
    assert rec.winner is not None and rec.winner.run_id == best["run_id"] == st["best"]["run_id"]
    # the closing lines carry the same transfer figures and recipe score
    for t in st["transfer"]:
        assert (f"transfer {t['small']} -> {t['large']}: Spearman {t['spearman']:.2f}, "
                f"Kendall {t['kendall']:.2f}") in "\n".join(rec.messages)
    assert closing_lines(res) == rec.messages[-len(closing_lines(res)):]


def test_failures_and_stops_of_an_earlier_process_show_after_resume(tmp_path: Path) -> None:
    """The view reads the stored study, so what happened before a resume is not forgotten: the
    first redraw after ``resume`` already counts the failed segments of the first process."""
    data = synthetic_study(
        executor={"name": "inline"}, workers=1, budget={"seconds": 300},
        steps={"min": 5, "max": 45, "eta": 3}, eval_every=5)
    data["backend"]["options"]["fail_at_step"] = 12
    with pytest.raises(StudyAborted):
        _run(tmp_path / "F", data)
    study = Study.open(tmp_path / "F", readonly=False)
    first = status_dict(study)["segments"]["failed"]
    assert first >= 3
    rec = Recorder(study)
    try:
        with pytest.raises(StudyAborted):
            run_study(study, rec)
        final = snapshot(study_results(study))  # what a redraw after the abort would show
        assert_agree(final, status_dict(study))
    finally:
        study.close()
    assert rec.seen
    snap, st = rec.seen[0]
    assert snap.failures >= first
    for snap, st in rec.seen:
        assert_agree(snap, st)
    assert final.failures > first  # this process's failures are added to the earlier ones


def test_plain_lines_show_the_snapshot_figures(tmp_path: Path) -> None:
    """The plain view prints the snapshot's figures (spent, failures, best) and nothing else."""
    data = synthetic_study(executor={"name": "inline"}, workers=1, budget={"seconds": 200},
                           steps={"min": 5, "max": 45, "eta": 3}, eval_every=5)
    study = Study.create(tmp_path / "P", parse_spec(data), "eval_accuracy")
    out = io.StringIO()
    sink = PlainSink(out, every=0.0)
    try:
        run_study(study, sink)
        res = study_results(study)
    finally:
        study.close()
    lines = out.getvalue().splitlines()
    budget = [line for line in lines if line.startswith("[")]
    assert budget, lines
    last = snapshot(res)
    assert f"budget {res.budget.spent:.0f} / {res.budget.total:.0f} compute-s" in "\n".join(budget)
    assert res.winner is not None
    assert lines[-1] == (f"best eval_accuracy={res.winner.score:.4f} on {res.winner.model} at "
                         f"{res.winner.steps} steps: {dict(res.winner.config)}")
    assert f"best {last.best_text}" in budget[-1]

    # the live table shows the same snapshot
    from rich.console import Console
    from rich.live import Live

    rich = RichSink()
    rich.console = Console(file=io.StringIO(), force_terminal=True, width=120)
    rich.live = Live(console=rich.console, auto_refresh=False)
    rich.live.start()
    rich.update(last)
    rich.live.refresh()
    rich.live.stop()
    table = rich.console.file.getvalue()  # type: ignore[attr-defined]
    assert last.budget_text in table and last.best_text in table


def test_a_silent_sink_gets_no_snapshots() -> None:
    """``--quiet`` and the benchmarks pass the base sink: the tuner builds no snapshot for it."""
    assert not ProgressSink().wants_updates
    assert PlainSink(io.StringIO()).wants_updates


class SlowSink(ProgressSink):
    """A view that takes 0.1 s to draw, as reading a large study does."""

    def __init__(self) -> None:
        self.drawing = 0.0
        self.draws = 0

    def update(self, snap: Snapshot) -> None:
        t0 = time.perf_counter()
        time.sleep(0.1)
        self.draws += 1
        self.drawing += time.perf_counter() - t0


def test_redraws_are_throttled_by_their_own_cost(tmp_path: Path) -> None:
    """A redraw reads the whole study, so a slow one is repeated less often: drawing takes about a
    sixth of the study's time (5x its cost between redraws), not one draw per segment."""
    data = synthetic_study(executor={"name": "inline"}, workers=1, budget={"seconds": 1200},
                           optimizer={"name": "random"}, steps={"min": 5, "max": 45, "eta": 3},
                           eval_every=5, confirm={"top_k": 0})
    data["backend"]["options"]["sleep"] = 0.002
    study = Study.create(tmp_path / "T", parse_spec(data), "eval_accuracy")
    sink = SlowSink()
    t0 = time.perf_counter()
    try:
        run_study(study, sink)
        segments = len(study.segments)
    finally:
        study.close()
    total = time.perf_counter() - t0
    assert segments >= 10
    # one draw per segment would be more than half the study's time here; throttled, a draw
    # (0.1 s or more) starts at least 5x its cost after the previous one began, so at least 4x
    # its cost without drawing lies between them (plus the first draw and one as each phase
    # ends). Bounded by the time the study spent not drawing, so a slower machine, whose
    # segments take longer, is allowed more draws, but never one per segment
    assert sink.draws <= 3 + (total - sink.drawing) / (4 * 0.1), (sink.draws, total, segments)
    assert sink.draws < segments
    assert sink.drawing <= total / 5 + 0.4, (sink.drawing, total, sink.draws, segments)
