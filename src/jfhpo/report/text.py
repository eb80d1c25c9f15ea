"""Status of a study as a dict (for ``--json``) and as readable text tables.

Both read the typed results layer (``jfhpo.results``), as the HTML report and the exports do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jfhpo.results import StudyResults, study_results
from jfhpo.study import Study


def status_dict(study: Study, results: StudyResults | None = None) -> dict[str, Any]:
    """Everything ``jfhpo status`` shows, as plain JSON-able data."""
    res = results or study_results(study)
    runs: list[dict[str, Any]] = [{
        "run_id": r.run_id, "model": r.model, "phase": r.phase.value, "config": dict(r.config),
        "steps": r.steps_done, "score": r.score, "cost": round(r.cost, 3), "state": r.state,
        "stop_reason": None if r.stop_rule is None else
        {"rule": r.stop_rule, "message": r.stop_message},
        "error": r.error,
        "effective_config": dict(r.effective_config),
    } for r in res.runs]
    confirmation = [{
        "config": dict(c.config), "target_score": c.target_score, "target_rank": c.target_rank,
        "search_rank": c.search_rank, "run_id": c.run_id, "recipe": c.recipe,
    } for c in res.confirmation]
    best = study.best()
    if best is not None and res.winner is not None:
        best["effective_config"] = dict(res.winner.effective_config)
    b = res.budget
    return {
        "name": res.name, "folder": res.folder, "phase": res.phase.value,
        "objective": res.objective, "mode": res.mode,
        "budget": {"total": b.total, "measure": b.measure,
                   "spent_compute": round(b.spent_compute, 3),
                   "wall_used": round(b.wall_used, 3),
                   "confirm_fraction": b.confirm_fraction,
                   "by_phase": {k: round(v, 3) for k, v in b.by_phase.items()}},
        "segments": dict(res.segment_counts), "runs": runs, "best": best,
        "transfer": [{k: v for k, v in dataclasses.asdict(t).items() if k != "points"}
                     for t in res.transfer if t.spearman is not None],
        "warnings": list(res.warnings),
        "confirmation": confirmation,
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
        "spent by phase: " + ", ".join(f"{k} {v:.1f}s" for k, v in b["by_phase"].items()),
        "segments: " + ", ".join(f"{k} {v}" for k, v in d["segments"].items() if v),
    ]
    best = d["best"]
    if best:
        lines.append(f"best: {d['objective']}={best['score']:.4f} on {best['model']} at "
                     f"{best['steps']} steps (run {best['run_id']}) — {best['how']}")
        lines.append(f"      {_fmt_config(best['config'])}")
        if best.get("effective_config"):
            lines.append(f"      effective (recipe + fixed + searched): "
                         f"{_fmt_config(best['effective_config'])}")
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
