"""Checkpoint registry: (run, step) -> folder, with atomic commit, resume lookup and clean-up.

A segment writes its checkpoint into a staging folder; ``commit`` renames it into place and the
study records it in the same breath, so a checkpoint is either fully registered or not there. A
crash between the rename and the record leaves an unregistered folder, which ``sweep`` removes.

Where the folders live is a ``CheckpointStore``: ``LocalStore`` is a directory, the study folder's
``checkpoints/`` by default, or ``checkpoints: {path: /shared/fs/...}`` in the study file when
workers run on other machines and must see the same files. What to release is decided by the pure
retention planner (``jfhpo.planning.retention``); the registry only carries it out.
"""

from __future__ import annotations

import abc
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path

from jfhpo.planning.retention import plan_release
from jfhpo.study import Study


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class CheckpointStore(abc.ABC):
    """Where checkpoint folders live; every worker of the study must see the same paths."""

    root: Path

    @abc.abstractmethod
    def staging(self, segment_id: int) -> Path:
        """A fresh, empty folder for a segment to write its checkpoint into."""

    @abc.abstractmethod
    def final_path(self, run_id: int, step: int) -> Path:
        """Where the committed checkpoint of (run, step) lives."""

    @abc.abstractmethod
    def move(self, src: Path, dst: Path) -> int:
        """Move a staged checkpoint into place (atomically on one filesystem); its bytes."""

    @abc.abstractmethod
    def remove(self, path: Path) -> None:
        """Delete a checkpoint folder (missing is fine)."""


class LocalStore(CheckpointStore):
    """A directory on a local disk or a shared filesystem mounted at the same path everywhere."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def staging(self, segment_id: int) -> Path:
        path = self.root / "staging" / f"segment-{segment_id}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def final_path(self, run_id: int, step: int) -> Path:
        return self.root / f"run-{run_id}" / f"step-{step}"

    def move(self, src: Path, dst: Path) -> int:
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
        return folder_bytes(dst)

    def remove(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


class CheckpointRegistry:
    """Owns the study's checkpoints in its store. Decisions about what to keep come from the
    retention planner."""

    def __init__(self, study: Study) -> None:
        self.study = study
        custom = study.spec.checkpoints.path
        self.store: CheckpointStore = LocalStore(
            Path(custom) / study.folder.resolve().name if custom else study.folder / "checkpoints")
        self.root = self.store.root

    def staging(self, segment_id: int) -> Path:
        """A fresh, empty folder for the segment to write its checkpoint into."""
        return self.store.staging(segment_id)

    def final_path(self, run_id: int, step: int) -> Path:
        return self.store.final_path(run_id, step)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.study.folder))
        except ValueError:
            return str(path.resolve())

    def commit(self, segment_id: int, run_id: int, step: int) -> Path:
        """Move the staged checkpoint into place and record it. The run's older checkpoints stay
        until ``release_superseded``: the segment is recorded as finished in between, and a crash
        there must still find the checkpoint its re-run starts from."""
        src = self.root / "staging" / f"segment-{segment_id}"
        dst = self.final_path(run_id, step)
        nbytes = self.store.move(src, dst)
        self.study.add_checkpoint(run_id, step, self._rel(dst), nbytes)
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
            self.store.remove(self.study.folder / rel)

    def total_bytes(self) -> int:
        return sum(b for _, b in self.study.checkpoints.values())

    def existing(self) -> set[tuple[int, int]]:
        """The registered checkpoints whose folders are really there."""
        return {k for k in self.study.checkpoints if self.lookup(*k) is not None}

    def collect(self, *, keep: Collection[int], protected: Collection[tuple[int, int]],
                busy: Collection[int], budget_bytes: float,
                priority: Mapping[int, float]) -> list[tuple[int, int]]:
        """Release what the retention planner says (see ``plan_release``); returns it."""
        sizes = {k: b for k, (_, b) in self.study.checkpoints.items()}
        plan = plan_release(sizes, keep=keep, protected=protected, busy=busy,
                            budget_bytes=budget_bytes, priority=priority)
        for rid, st in plan:
            self.release(rid, st)
        return plan

    def sweep(self) -> None:
        """Remove staging leftovers and folders the study does not know (crash debris)."""
        self.store.remove(self.root / "staging")
        known = {self.study.folder / rel for rel, _ in self.study.checkpoints.values()}
        for run_dir in self.root.glob("run-*"):
            for step_dir in run_dir.glob("step-*"):
                if step_dir not in known:
                    shutil.rmtree(step_dir, ignore_errors=True)
