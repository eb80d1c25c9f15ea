"""Status of a study as a dict (for ``--json``) and as readable text tables."""

from __future__ import annotations

from typing import Any

from jfhpo.records import Phase, SegmentStatus
from jfhpo.study import Study


def status_dict(study: Study) -> dict[str, Any]:
    """Everything ``jfhpo status`` shows, as plain JSON-able data."""
    runs: list[dict[str, Any]] = []
    for rid in sorted(study.runs):
        r = study.run_record(rid)
        segs = [s for s in study.segments.values() if s.run_id == rid]
        last = max(segs, key=lambda s: s.segment_id) if segs else None
        state = "queued"
        if last is not None:
            state = last.status.name.lower()
        runs.append({
            "run_id": rid, "model": r.model, "phase": r.phase.value, "config": dict(r.config),
            "steps": r.steps_done, "score": None if r.score is None else study.sign * r.score,
            "cost": round(r.cost, 3), "state": state,
            "stop_reason": None if r.stopped is None else
            {"rule": r.stopped.rule, "message": r.stopped.message},
            "error": last.error.strip().splitlines()[-1] if last and last.error else None,
        })
    segs = list(study.segments.values())
    count = {s.name.lower(): sum(1 for x in segs if x.status is s) for s in SegmentStatus}
    proxy_vs_target = []
    confirmed = [r for r in runs if r["phase"] == Phase.CONFIRM.value and r["score"] is not None]
    if confirmed:
        order = sorted(confirmed, key=lambda r: r["score"], reverse=study.sign > 0)
        recipe = study.recipe()
        rkey = None if recipe is None else study.space.key(recipe)

        def is_recipe(row: dict[str, Any]) -> bool:
            return rkey is not None and study.space.key(row["config"]) == rkey

        # confirmation runs are planned (and numbered) in the optimizer's ranking from the search
        planned = [r["run_id"] for r in sorted(confirmed, key=lambda r: r["run_id"])
                   if not is_recipe(r)]
        for rank, row in enumerate(order, 1):
            proxy_vs_target.append({
                "config": row["config"], "target_score": row["score"], "target_rank": rank,
                "search_rank": planned.index(row["run_id"]) + 1 if row["run_id"] in planned
                else None,
                "run_id": row["run_id"], "recipe": is_recipe(row)})
    return {
        "name": study.spec.name, "folder": str(study.folder), "phase": study.phase.value,
        "objective": study.objective, "mode": study.spec.objective.mode,
        "budget": {"total": study.spec.budget.seconds, "measure": study.spec.budget.measure,
                   "spent_compute": round(study.budget_spent(), 3),
                   "wall_used": round(study.wall_used(), 3),
                   "confirm_fraction": study.spec.confirm.fraction},
        "segments": count, "runs": runs, "best": study.best(),
        "transfer": [t.__dict__ for t in study.transfer],
        "warnings": list(study.warnings),
        "confirmation": proxy_vs_target,
    }


def _fmt_config(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in config.items())


def status_text(study: Study, limit: int = 40) -> str:
    """A readable status: budget, segment counts, best, transfer, warnings and the runs."""
    d = status_dict(study)
    b = d["budget"]
    lines = [
        f"study {d['name']} ({d['folder']}), phase: {d['phase']}",
        (
            f"budget: {b['spent_compute']:.1f} of {b['total']:.0f} compute-seconds spent "
            f"(wall-clock used {b['wall_used']:.1f}s; "
            if b["measure"] != "wall"
            else f"budget: {b['wall_used']:.1f} of {b['total']:.0f} wall-clock seconds used "
            f"(compute spent {b['spent_compute']:.1f}s; "
        )
        + f"{100 * b['confirm_fraction']:.0f}% reserved for confirmation)",
        "segments: " + ", ".join(f"{k} {v}" for k, v in d["segments"].items() if v),
    ]
    best = d["best"]
    if best:
        lines.append(f"best: {d['objective']}={best['score']:.4f} on {best['model']} at "
                     f"{best['steps']} steps (run {best['run_id']}) — {best['how']}")
        lines.append(f"      {_fmt_config(best['config'])}")
    for t in d["transfer"]:
        lines.append(f"transfer {t['small']} -> {t['large']}: Spearman {t['spearman']:.2f}, "
                     f"Kendall {t['kendall']:.2f} over {t['n_configs']} configurations "
                     f"({t['n_pairs']} pairs)")
    for w in d["warnings"]:
        lines.append(f"warning: {w}")
    lines.append("")
    header = f"{'run':>4} {'model':>6} {'phase':>8} {'steps':>5} {'score':>8} {'cost':>8}  state / reason"
    lines.append(header)
    runs = d["runs"][-limit:]
    for r in runs:
        score = "-" if r["score"] is None else f"{r['score']:.4f}"
        why = r["state"]
        if r["stop_reason"]:
            why += f": {r['stop_reason']['rule']} — {r['stop_reason']['message']}"
        if r["error"]:
            why += f": {r['error']}"
        lines.append(f"{r['run_id']:>4} {r['model']:>6} {r['phase']:>8} {r['steps']:>5} "
                     f"{score:>8} {r['cost']:>8.1f}  {why}")
    if len(d["runs"]) > limit:
        lines.append(f"(showing the last {limit} of {len(d['runs'])} runs; --json has all)")
    if d["confirmation"]:
        lines.append("")
        lines.append("confirmation on the target (search rank = the optimizer's ranking before it):")
        lines.append(f"  {'target':>6} {'search':>6} {'score':>8}  configuration")
        for c in d["confirmation"]:
            srank = "recipe" if c["recipe"] else f"#{c['search_rank']}"
            lines.append(f"  #{c['target_rank']:<5} {srank:>6} {c['target_score']:>8.4f}  "
                         f"{_fmt_config(c['config'])}")
    return "\n".join(lines)
