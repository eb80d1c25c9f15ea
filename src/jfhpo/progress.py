"""Progress views for ``jfhpo run``: a live table on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Snapshot:
    """What the progress view shows; filled by the tuner after every event."""

    phase: str = "search"
    budget_spent: float = 0.0
    budget_total: float = 0.0
    budget_search: float = 0.0
    in_flight: dict[int, str] = field(default_factory=dict)  # segment id -> "run 3 1m step 12/30"
    best: str = "-"
    segments_done: int = 0
    stops: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    failures: int = 0
    transfer: str = ""


class ProgressSink:
    """Receives the tuner's news. The base class prints nothing."""

    def start(self, folder: str, name: str) -> None: ...
    def message(self, text: str) -> None: ...
    def update(self, snap: Snapshot) -> None: ...
    def finish(self, best: Mapping[str, Any] | None) -> None: ...


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
        if snap.segments_done == self._done and now - self._last < self.every:
            return
        self._done, self._last = snap.segments_done, now
        self._p(
            f"[{snap.phase}] budget {snap.budget_spent:.0f}/{snap.budget_total:.0f}s  "
            f"segments {snap.segments_done}  in flight {len(snap.in_flight)}  best {snap.best}"
        )

    def finish(self, best: Mapping[str, Any] | None) -> None:
        if best is None:
            self._p("no run produced a score")
        else:
            self._p(f"best {best['objective']}={best['score']:.4f} on {best['model']} at "
                    f"{best['steps']} steps: {best['config']}")


class RichSink(ProgressSink):
    """A live table (rich) redrawn a few times a second."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.snap = Snapshot()

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
        pct = 100.0 * snap.budget_spent / snap.budget_total if snap.budget_total else 0.0
        t.add_row("budget", f"{snap.budget_spent:.0f} / {snap.budget_total:.0f} s ({pct:.0f}%)")
        t.add_row("segments done", str(snap.segments_done))
        t.add_row("in flight", "\n".join(snap.in_flight.values()) or "-")
        t.add_row("best so far", snap.best)
        t.add_row("recent stops", "\n".join(snap.stops) or "-")
        if snap.failures:
            t.add_row("failed segments", str(snap.failures))
        if snap.transfer:
            t.add_row("transfer", snap.transfer)
        self.live.update(t)

    def finish(self, best: Mapping[str, Any] | None) -> None:
        self.live.stop()
        PlainSink().finish(best)


def make_sink(quiet: bool = False) -> ProgressSink:
    if quiet:
        return ProgressSink()
    return RichSink() if sys.stdout.isatty() else PlainSink()
