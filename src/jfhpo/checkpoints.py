"""Checkpoint registry: (run, step) -> folder, with atomic commit, resume lookup and clean-up.

A segment writes its checkpoint into a staging folder; ``commit`` renames it into place and the
study records it in the same breath, so a checkpoint is either fully registered or not there. A
crash between the rename and the record leaves an unregistered folder, which ``sweep`` removes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from jfhpo.study import Study


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class CheckpointRegistry:
    """Owns ``<study>/checkpoints``. Decisions about what to keep come from the caller."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.root = study.folder / "checkpoints"
        self.root.mkdir(exist_ok=True)

    def staging(self, segment_id: int) -> Path:
        """A fresh, empty folder for the segment to write its checkpoint into."""
        path = self.root / "staging" / f"segment-{segment_id}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def final_path(self, run_id: int, step: int) -> Path:
        return self.root / f"run-{run_id}" / f"step-{step}"

    def commit(self, segment_id: int, run_id: int, step: int) -> Path:
        """Move the staged checkpoint into place and record it. The run's older checkpoints stay
        until ``release_superseded``: the segment is recorded as finished in between, and a crash
        there must still find the checkpoint its re-run starts from."""
        src = self.root / "staging" / f"segment-{segment_id}"
        dst = self.final_path(run_id, step)
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
        self.study.add_checkpoint(run_id, step, str(dst.relative_to(self.study.folder)),
                                  folder_bytes(dst))
        return dst

    def release_superseded(self, run_id: int, step: int) -> None:
        """Release ``run_id``'s checkpoints older than ``step``."""
        for (rid, st) in list(self.study.checkpoints):
            if rid == run_id and st < step:
                self.release(rid, st)

    def lookup(self, run_id: int, step: int) -> Path | None:
        """The committed checkpoint of ``run_id`` at ``step``, if it is still there."""
        if (run_id, step) not in self.study.checkpoints:
            return None
        rel, _ = self.study.checkpoints[(run_id, step)]
        path = self.study.folder / rel
        return path if path.exists() else None

    def release(self, run_id: int, step: int) -> None:
        rel, _ = self.study.checkpoints.get((run_id, step), ("", 0))
        self.study.release_checkpoint(run_id, step)
        if rel:
            shutil.rmtree(self.study.folder / rel, ignore_errors=True)

    def total_bytes(self) -> int:
        return sum(b for _, b in self.study.checkpoints.values())

    def collect(self, keep: Callable[[int], bool], budget_bytes: float,
                priority: Callable[[int], float]) -> list[int]:
        """Release checkpoints of runs for which ``keep(run_id)`` is False; then, while the
        total exceeds ``budget_bytes``, release the lowest-``priority`` ones. Returns the runs
        whose checkpoints were released."""
        released: list[int] = []
        for (rid, st) in sorted(self.study.checkpoints):
            if not keep(rid):
                self.release(rid, st)
                released.append(rid)
        ordered = sorted(self.study.checkpoints, key=lambda k: priority(k[0]))
        while self.total_bytes() > budget_bytes and ordered:
            rid, st = ordered.pop(0)
            self.release(rid, st)
            released.append(rid)
        return released

    def sweep(self) -> None:
        """Remove staging leftovers and folders the study does not know (crash debris)."""
        shutil.rmtree(self.root / "staging", ignore_errors=True)
        known = {self.study.folder / rel for rel, _ in self.study.checkpoints.values()}
        for run_dir in self.root.glob("run-*"):
            for step_dir in run_dir.glob("step-*"):
                if step_dir not in known:
                    shutil.rmtree(step_dir, ignore_errors=True)
