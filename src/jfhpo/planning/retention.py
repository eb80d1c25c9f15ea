"""Checkpoint retention: which checkpoints to release, as a pure function of what exists.

Two passes. First, checkpoints of runs that cannot grow any more (``keep`` False: stopped, failed,
finished at the full budget, or ones the optimizer will never extend) are released. Then, while
the checkpoints left exceed the disk budget, the lowest-priority ones go (the worst-scoring runs
first). Neither pass ever releases a *protected* checkpoint: one that a queued or running segment
starts from (an extension about to load it, or the re-run of an interrupted segment), nor any
checkpoint of a run that is busy. So the disk budget can be exceeded for a while by exactly the
checkpoints the queued work needs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = ["plan_release"]


def plan_release(checkpoints: Mapping[tuple[int, int], int], *, keep: Collection[int],
                 protected: Collection[tuple[int, int]], busy: Collection[int],
                 budget_bytes: float, priority: Mapping[int, float]) -> list[tuple[int, int]]:
    """The (run, step) checkpoints to release, in order. ``checkpoints`` maps each live one to
    its size in bytes; ``keep`` the runs that may still be extended; ``busy`` runs with a segment
    queued or running; ``priority`` higher means keep longer (missing: lowest)."""

    def safe(k: tuple[int, int]) -> bool:
        return k not in protected and k[0] not in busy

    out = [k for k in sorted(checkpoints) if k[0] not in keep and safe(k)]
    gone = set(out)
    total = sum(b for k, b in checkpoints.items() if k not in gone)
    rest = sorted((k for k in checkpoints if k not in gone and safe(k)),
                  key=lambda k: (priority.get(k[0], float("-inf")), k))
    for k in rest:
        if total <= budget_bytes:
            break
        out.append(k)
        total -= checkpoints[k]
    return out
