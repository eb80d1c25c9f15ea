"""``jfhpo report``: one self-contained HTML file that shows what a study found.

The page holds every figure as inline SVG (matplotlib) and a few lines of inline script for the
copy button: no CDN, no image files, no network, so it opens offline and can be mailed around.
It reads the study through the typed results layer only, so it can be regenerated while the study
runs (SQLite in WAL mode lets a reader in while the tuner writes).

Sections: summary (budget by phase, best configuration, winner against the recipe on the target),
best-so-far against cost, the fidelity map, learning curves, proxy against target, parallel
coordinates, hyperparameter importance (Optuna's fANOVA) and the effective winning
configuration, ready to copy.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from jfhpo.report import plots
from jfhpo.results import Outcome, StudyResults, study_results
from jfhpo.study import Study

__all__ = ["render_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:980px;
padding:1rem 1.5rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid
#ddd;padding-bottom:.2rem} .sub{color:#666;font-size:.9rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0} td,th{padding:.2rem .6rem;
border-bottom:1px solid #eee;text-align:left} th{background:#f6f6f6} td.num{text-align:right;
font-variant-numeric:tabular-nums} pre{background:#f6f8fa;padding:.8rem;overflow:auto;
font-size:.85rem;border-radius:4px} .figure svg{max-width:100%;height:auto} .note{color:#555;
font-size:.85rem} .warn{color:#9a3412} button{font-size:.85rem;padding:.2rem .7rem;cursor:pointer}
nav a{margin-right:.8rem;font-size:.85rem} .swatch{display:inline-block;width:.8rem;height:.8rem;
border-radius:2px;margin-right:.3rem;vertical-align:middle}
"""

_SCRIPT = """
document.querySelectorAll('button[data-copy]').forEach(function (b) {
  b.addEventListener('click', function () {
    var text = document.getElementById(b.dataset.copy).textContent;
    var done = function () { b.textContent = 'copied'; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { b.textContent = 'select and copy'; });
    } else {
      var r = document.createRange(); r.selectNodeContents(document.getElementById(b.dataset.copy));
      var s = window.getSelection(); s.removeAllRanges(); s.addRange(r); b.textContent = 'selected';
    }
  });
});
"""

_SECTIONS = (
    ("summary", "Summary"), ("trace", "Best so far against cost"),
    ("fidelity", "Fidelity map"), ("curves", "Learning curves"),
    ("transfer", "Proxy against target"), ("parallel", "Configurations against score"),
    ("importance", "Hyperparameter importance"), ("winner", "Effective winning configuration"),
    ("runs", "All runs"),
)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(v: float | None, fmt: str = ".4g") -> str:
    return "–" if v is None else format(v, fmt)


def _fmt_value(v: Any) -> str:
    return format(v, ".4g") if isinstance(v, float) else str(v)


def _config_text(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in config.items())


def _figure(svg: str | None, empty: str) -> str:
    if svg is None:
        return f'<p class="note">{_e(empty)}</p>'
    return f'<div class="figure">{svg}</div>'


def _safe(fn: Callable[[], str | None], what: str, problems: list[str]) -> str | None:
    """Draw one figure; a figure that cannot be drawn is reported in the page, not fatal."""
    try:
        return fn()
    except Exception as exc:  # the rest of the report is still worth having
        problems.append(f"{what}: {type(exc).__name__}: {exc}")
        return None


def _summary(res: StudyResults) -> str:
    b = res.budget
    total_spent = sum(b.by_phase.values())
    unit = "wall-clock seconds" if b.measure == "wall" else "compute-seconds"
    rows = "".join(
        f"<tr><td>{_e('confirmation' if k == 'confirm' else k)}</td>"
        f"<td class=num>{v:.1f}</td><td class=num>"
        f"{100 * v / total_spent if total_spent else 0:.0f}%</td></tr>"
        for k, v in b.by_phase.items())
    if b.interrupted:
        rows += (f"<tr><td>interrupted (re-run)</td><td class=num>{b.interrupted:.1f}</td>"
                 f"<td></td></tr>")
    parts = [
        f"<p>Budget: {b.total:.0f} {unit}, {100 * b.confirm_fraction:.0f}% reserved for "
        f"confirmation on the target. Compute spent: {b.spent_compute:.1f} s; wall-clock "
        f"used: {b.wall_used:.1f} s. Phase now: <b>{_e(res.phase.value)}</b>.</p>",
        "<table><tr><th>phase</th><th>compute-seconds</th><th>share</th></tr>"
        f"{rows}</table>",
        "<p>Segments: " + ", ".join(f"{k} {v}" for k, v in res.segment_counts.items() if v)
        + "</p>",
    ]
    w = res.winner
    if w is None:
        parts.append('<p class="note">No run has a score yet.</p>')
    else:
        parts.append(
            f"<p><b>Best configuration</b> (run {w.run_id}): {res.objective} = "
            f"<b>{w.score:.4g}</b> on {_e(w.model)} at {w.steps} steps. {_e(w.how)}.<br>"
            f"<code>{_e(_config_text(w.config))}</code></p>")
    if res.versus:
        rows = "".join(
            f"<tr><td>{_e(v.label)}</td><td class=num>{v.score:.4g}</td>"
            f"<td class=num>{_num(v.spread, '.3g')}</td><td>{_e(v.spread_kind)}</td>"
            f"<td class=num>{v.n_runs}</td><td>{_e(_config_text(v.config))}</td></tr>"
            for v in res.versus)
        delta = ""
        if len(res.versus) == 1 and res.versus[0].label != "winner":
            delta = "<p>The recipe itself won the confirmation on the target.</p>"
        if len(res.versus) == 2:
            d = res.versus[0].score - res.versus[1].score
            delta = f"<p>Winner minus recipe: <b>{d:+.4g}</b> {_e(res.objective)}.</p>"
        parts.append(
            f"<p>Winner against the recipe on the target ({_e(res.target)}, {res.max_steps} "
            "steps):</p><table><tr><th></th><th>score</th><th>spread</th><th>spread is</th>"
            f"<th>runs</th><th>configuration</th></tr>{rows}</table>{delta}")
    if res.confirmation:
        rows = "".join(
            f"<tr><td class=num>#{c.target_rank}</td><td class=num>"
            f"{'recipe' if c.recipe else '#' + str(c.search_rank)}</td><td class=num>"
            f"{c.target_score:.4g}</td><td class=num>{c.run_id}</td>"
            f"<td>{_e(_config_text(c.config))}</td></tr>" for c in res.confirmation)
        parts.append(
            "<p>Every configuration confirmed on the target (search rank: the optimizer's "
            "ranking before the confirmation):</p><table><tr><th>target rank</th>"
            f"<th>search rank</th><th>score</th><th>run</th><th>configuration</th></tr>{rows}"
            "</table>")
    elif w is not None:
        parts.append('<p class="note">No confirmation on the target yet: the winner has not been '
                     "compared with the recipe.</p>")
    for warning in res.warnings:
        parts.append(f'<p class="warn">warning: {_e(warning)}</p>')
    return "\n".join(parts)


def _transfer_table(res: StudyResults) -> str:
    if not res.transfer:
        return ""
    rows = "".join(
        f"<tr><td>{_e(t.small)}</td><td>{_e(t.large)}</td><td class=num>{_num(t.spearman, '.2f')}"
        f"</td><td class=num>{_num(t.kendall, '.2f')}</td><td class=num>{t.n_configs}</td>"
        f"<td class=num>{t.n_pairs}</td></tr>" for t in res.transfer)
    return ("<table><tr><th>smaller</th><th>larger</th><th>Spearman</th><th>Kendall</th>"
            f"<th>configurations</th><th>pairs</th></tr>{rows}</table>")


def _runs_table(res: StudyResults) -> str:
    rows = []
    for r in res.runs:
        why = r.outcome.value
        if r.stop_rule:
            why = f"stopped: {r.stop_rule} — {r.stop_message}"
        elif r.error:
            why = f"failed: {r.error}"
        rows.append(
            f"<tr><td class=num>{r.run_id}</td><td>{_e(r.model)}</td><td>{_e(r.phase.value)}</td>"
            f"<td class=num>{r.steps_done}</td><td class=num>{_num(r.score)}</td>"
            f"<td class=num>{r.cost:.1f}</td><td>{_e(_config_text(r.config))}</td>"
            f"<td>{_e(why)}</td></tr>")
    return ("<table><tr><th>run</th><th>model</th><th>phase</th><th>steps</th><th>score</th>"
            "<th>cost</th><th>configuration</th><th>state / reason</th></tr>"
            + "".join(rows) + "</table>")


def _winner(res: StudyResults) -> str:
    w = res.winner
    if w is None:
        return '<p class="note">No winner yet.</p>'
    eff = {k: v for k, v in w.effective_config.items()}
    as_yaml = yaml.safe_dump(eff, sort_keys=False, default_flow_style=False)
    return (
        f"<p>The recipe of the <code>{_e(res.backend)}</code> backend, then the study's "
        "<code>fixed</code> keys, then the searched ones: exactly what the trainer ran for run "
        f"{w.run_id}. Export it for a trainer with <code>jfhpo export {_e(res.folder)} --format "
        "verl|trl|yaml|json|optuna</code>.</p>"
        '<p><button data-copy="eff-yaml">copy YAML</button></p>'
        f'<pre id="eff-yaml">{_e(as_yaml)}</pre>'
        '<p><button data-copy="eff-json">copy JSON</button></p>'
        f'<pre id="eff-json">{_e(json.dumps(eff, indent=2))}</pre>')


def render_report(study: Study, *, now: _dt.datetime | None = None) -> str:
    """The report of ``study`` as one HTML document (a string)."""
    from jfhpo.report import optuna_bridge

    res = study_results(study)
    problems: list[str] = []
    importance = None
    try:
        importance = optuna_bridge.param_importance(res, study.space)
    except Exception as exc:  # optuna missing or too few runs: say so in the page
        problems.append(f"importance: {type(exc).__name__}: {exc}")
    model, steps, rows = optuna_bridge.importance_trials(res)
    where = f"{model} at {steps} steps ({len(rows)} runs: the fidelity most runs reached)"

    sections: dict[str, str] = {"summary": _summary(res)}
    sections["trace"] = _figure(
        _safe(lambda: plots.best_so_far(res), "best so far", problems),
        "No scored segment yet.") + (
        '<p class="note">Lines: the best score so far on each model; dots: each scored segment. '
        "The dotted line marks where the confirmation stage began.</p>")
    sections["fidelity"] = _figure(
        _safe(lambda: plots.fidelity_map(res), "fidelity map", problems),
        "No segment yet.") + (
        '<p class="note">Each bar is a segment: one execution of a run from the step it resumed '
        "at to the step it reached. Extended: a later segment continued the run from its "
        "checkpoint.</p>")
    sections["curves"] = _figure(
        _safe(lambda: plots.learning_curves(res), "learning curves", problems),
        "No learning curve yet.")
    sections["transfer"] = _figure(
        _safe(lambda: plots.transfer_scatter(res), "proxy vs target", problems),
        "No configuration has been scored on two models yet.") + _transfer_table(res) + (
        '<p class="note">Each point is a configuration scored on both models, read at the '
        "largest step both reached. Spearman and Kendall are shown once at least 3 "
        "configurations were scored on both.</p>")
    sections["parallel"] = _figure(
        _safe(lambda: plots.parallel_coordinates(res, study.space, rows,
                                                 f"runs on {where}"), "parallel", problems),
        "Fewer than two runs reached a shared fidelity yet.")
    if importance is not None:
        table = "".join(f"<tr><td>{_e(k)}</td><td class=num>{v:.3f}</td></tr>"
                        for k, v in importance.importances)
        sections["importance"] = _figure(
            _safe(lambda: plots.importance_bars(
                importance.importances,
                f"{importance.evaluator}, {importance.n_trials} runs on {importance.model} at "
                f"{importance.steps} steps"), "importance", problems), "") + (
            f"<table><tr><th>parameter</th><th>importance</th></tr>{table}</table>"
            f'<p class="note">Computed by Optuna\'s fANOVA evaluator fed this study\'s runs on '
            f"{_e(where)}; scores of different fidelities are not mixed.</p>")
    else:
        sections["importance"] = (
            f'<p class="note">Not computed: it needs at least 4 runs with different scores on one '
            f"fidelity (best covered: {_e(where)}).</p>")
    sections["winner"] = _winner(res)
    sections["runs"] = _runs_table(res)

    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in _SECTIONS)
    body = "\n".join(f'<section id="{k}"><h2>{_e(t)}</h2>\n{sections[k]}\n</section>'
                     for k, t in _SECTIONS)
    trouble = "".join(f'<p class="warn">could not draw {_e(p)}</p>' for p in problems)
    n_stopped = sum(1 for r in res.runs if r.outcome is Outcome.STOPPED)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>jfhpo report: {_e(res.name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>jfhpo report: {_e(res.name)}</h1>"
        f'<p class="sub">{_e(res.folder)} · objective {_e(res.objective)} ({_e(res.mode)}) · '
        f"backend {_e(res.backend)} · ladder {_e(' < '.join(res.models))} · {len(res.runs)} "
        f"runs ({n_stopped} stopped early) · generated {stamp}</p>"
        f"<nav>{nav}</nav>{trouble}{body}<script>{_SCRIPT}</script></body></html>\n")


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the study in ``folder`` to ``out`` (default FOLDER/report.html),
    atomically, so a browser never sees half a file while the report is regenerated."""
    study = Study.open(folder)
    try:
        text = render_report(study)
    finally:
        study.close()
    path = Path(out) if out is not None else Path(folder) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
