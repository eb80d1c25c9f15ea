"""Progress views for ``jfhpo run``: a live table on a terminal, plain lines otherwise.

The view computes nothing of its own: every figure it shows (budget spent, best so far, segment
counts, failures, stop reasons, transfer) is read from the typed results layer
(``jfhpo.results.study_results``), the same records that ``jfhpo status``, the HTML report and
the exports read, so the live view and ``jfhpo status --json`` cannot disagree. ``snapshot``
only picks what a live view shows (the segments in flight, the last few stops) and
``closing_lines`` the lines printed when the study ends.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from jfhpo.results import Outcome, SegmentResult, StudyResults, TransferPair, Winner

__all__ = ["PlainSink", "ProgressSink", "RichSink", "Snapshot", "closing_lines", "make_sink",
           "snapshot"]

#: how many of the most recent stop reasons the live view lists
RECENT_STOPS = 5


@dataclass(frozen=True)
class Snapshot:
    """What the progress view shows at one moment, picked from a study's results."""

    phase: str
    measure: str  # the budget's measure: "compute" or "wall"
    budget_spent: float  # in the budget's measure (``BudgetSummary.spent``)
    budget_total: float
    segments_done: int  # completed + stopped
    failures: int  # failed segments of the whole study
    in_flight: tuple[str, ...]  # "run 3 1m step 12/30", one per running segment
    best: Winner | None
    stops: tuple[str, ...]  # the most recent stop reasons, oldest first
    transfer: tuple[TransferPair, ...]  # pairs with a configuration scored on both models

    @property
    def best_text(self) -> str:
        b = self.best
        if b is None:
            return "-"
        return f"{b.score:.4f} ({b.model}, {b.steps} steps, run {b.run_id})"

    @property
    def transfer_text(self) -> str:
        """The measured pairs' Spearman figures; while none is measured, how far it is."""
        measured = [f"{t.small}->{t.large}: Spearman {t.spearman:.2f} ({t.n_configs} configs)"
                    for t in self.transfer if t.spearman is not None]
        if measured or not self.transfer:
            return "; ".join(measured)
        most = max(t.n_configs for t in self.transfer)
        return f"not measured yet (at most {most} configuration(s) scored on two models)"

    @property
    def budget_text(self) -> str:
        unit = "wall-clock s" if self.measure == "wall" else "compute-s"
        pct = 100.0 * self.budget_spent / self.budget_total if self.budget_total else 0.0
        return f"{self.budget_spent:.0f} / {self.budget_total:.0f} {unit} ({pct:.0f}%)"


def _stop_line(s: SegmentResult) -> str:
    return f"run {s.run_id} ({s.model}) at step {s.end_step}: {s.stop_message or s.stop_rule}"


def snapshot(res: StudyResults, recent: int = RECENT_STOPS) -> Snapshot:
    """The live view of ``res``: its figures as the results layer has them, plus the segments
    running now and the last ``recent`` stop reasons (a segment that a rule has just stopped
    and that is still winding down counts as the most recent)."""
    running = [s for s in res.segments if s.outcome is Outcome.RUNNING]
    stopped = sorted(
        (s for s in res.segments if s.stop_rule is not None),
        key=lambda s: (math.inf if s.finished_at is None else s.finished_at, s.segment_id))
    return Snapshot(
        phase=res.phase.value, measure=res.budget.measure, budget_spent=res.budget.spent,
        budget_total=res.budget.total,
        segments_done=res.segment_counts.get("completed", 0) + res.segment_counts.get("stopped", 0),
        failures=res.segment_counts.get("failed", 0),
        in_flight=tuple(f"run {s.run_id} {s.model} step {s.end_step}/{s.target_step}"
                        for s in running),
        best=res.winner,
        stops=tuple(_stop_line(s) for s in stopped[-recent:]) if recent > 0 else (),
        transfer=res.transfer)


def closing_lines(res: StudyResults) -> list[str]:
    """The closing lines of a study: transfer figures and the recipe beside the winner."""
    lines = [
        f"transfer {t.small} -> {t.large}: Spearman {t.spearman:.2f}, Kendall {t.kendall:.2f} "
        f"over {t.n_configs} configurations ({t.n_pairs} pairs)"
        for t in res.transfer if t.spearman is not None and t.kendall is not None
    ]
    if not lines and len(res.models) > 1:
        lines.append("transfer: not measured — no configurations were scored on two model sizes "
                     "(the check needs at least 3 shared ones)")
    w = res.winner
    if w is not None and w.recipe_score is not None:
        lines.append(f"recipe (no search) on the target: {w.objective}={w.recipe_score:.4f}; "
                     f"the winner: {w.score:.4f} ({w.score - w.recipe_score:+.4f})")
    return lines


class ProgressSink:
    """Receives the tuner's news. The base class prints nothing."""

    @property
    def wants_updates(self) -> bool:
        """Whether ``update`` shows anything; the tuner builds no snapshot for a sink that does
        not override it (``--quiet``, benchmarks)."""
        return type(self).update is not ProgressSink.update

    def start(self, folder: str, name: str) -> None: ...
    def message(self, text: str) -> None: ...
    def update(self, snap: Snapshot) -> None: ...
    def finish(self, best: Winner | None) -> None: ...


class PlainSink(ProgressSink):
    """Plain lines, for logs and pipes: one line per finished segment and per message."""

    def __init__(self, out: TextIO | None = None, every: float = 10.0) -> None:
        self.out = out or sys.stdout
        self.every = every
        self._last = 0.0
        self._done = -1

    def _p(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, folder: str, name: str) -> None:
        self._p(f"study {name}: {folder}")

    def message(self, text: str) -> None:
        self._p(text)

    def update(self, snap: Snapshot) -> None:
        now = time.monotonic()
        done = snap.segments_done + snap.failures
        if done == self._done and now - self._last < self.every:
            return
        self._done, self._last = done, now
        failed = f"  failed {snap.failures}" if snap.failures else ""
        self._p(
            f"[{snap.phase}] budget {snap.budget_text}  segments {snap.segments_done}{failed}  "
            f"in flight {len(snap.in_flight)}  best {snap.best_text}"
        )

    def finish(self, best: Winner | None) -> None:
        if best is None:
            self._p("no run produced a score")
        else:
            self._p(f"best {best.objective}={best.score:.4f} on {best.model} at "
                    f"{best.steps} steps: {dict(best.config)}")


class RichSink(ProgressSink):
    """A live table (rich) redrawn a few times a second."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)

    def start(self, folder: str, name: str) -> None:
        self.console.print(f"study {name}: {folder}", markup=False, highlight=False)
        self.live.start()

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def update(self, snap: Snapshot) -> None:
        from rich.table import Table

        t = Table(title=f"jfhpo — {snap.phase}", expand=False)
        t.add_column("what")
        t.add_column("value")
        t.add_row("budget", snap.budget_text)
        t.add_row("segments done", str(snap.segments_done))
        t.add_row("in flight", "\n".join(snap.in_flight) or "-")
        t.add_row("best so far", snap.best_text)
        t.add_row("recent stops", "\n".join(snap.stops) or "-")
        if snap.failures:
            t.add_row("failed segments", str(snap.failures))
        if snap.transfer:
            t.add_row("transfer", snap.transfer_text)
        self.live.update(t)

    def finish(self, best: Winner | None) -> None:
        self.live.stop()
        PlainSink().finish(best)


def make_sink(quiet: bool = False) -> ProgressSink:
    if quiet:
        return ProgressSink()
    return RichSink() if sys.stdout.isatty() else PlainSink()
