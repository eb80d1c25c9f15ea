"""The report's figures, drawn with matplotlib and returned as inline SVG text.

Each function takes the typed results (``jfhpo.results``) and returns one ``<svg>`` element, or
None when the study holds nothing to draw yet (the report then says so in words). SVG keeps the
report a single offline file: no image files, no scripts, no network.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jfhpo.results import Outcome, StudyResults
from jfhpo.space import CategoricalParam, SearchSpace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: colours of the outcomes; stopping rules get their own colours from ``_RULE_COLOURS``
OUTCOME_COLOURS: Mapping[str, str] = {
    Outcome.FINISHED.value: "#2a9d8f", Outcome.EXTENDED.value: "#8ecae6",
    Outcome.FAILED.value: "#111111", Outcome.RUNNING.value: "#9d4edd",
    Outcome.INTERRUPTED.value: "#adb5bd",
}
_RULE_COLOURS = ("#e63946", "#f4a261", "#e9c46a", "#d62828", "#bc6c25", "#ff006e", "#fb8500")


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (XML prolog and DOCTYPE dropped, text kept as text)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "jfhpo"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    start = text.index("<svg")
    svg = text[start:]
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)


def outcome_key(rule: str | None, outcome: Outcome) -> str:
    """The legend label of an outcome: stopped runs are told apart by their rule."""
    if outcome is Outcome.STOPPED:
        return f"stopped: {rule or 'rule'}"
    return outcome.value


def colours(res: StudyResults) -> dict[str, str]:
    """One colour per legend label, stable across the report's figures."""
    rules = sorted({s.stop_rule or "rule" for s in res.segments if s.outcome is Outcome.STOPPED}
                   | {r.stop_rule or "rule" for r in res.runs if r.outcome is Outcome.STOPPED})
    out = dict(OUTCOME_COLOURS)
    for i, rule in enumerate(rules):
        out[f"stopped: {rule}"] = _RULE_COLOURS[i % len(_RULE_COLOURS)]
    return out


def best_so_far(res: StudyResults) -> str | None:
    """Best score so far on each model against compute spent (the target bold)."""
    if not res.trace:
        return None
    fig = _figure(7.5, 3.4)
    ax = fig.add_subplot()
    for model in res.models:
        pts = [p for p in res.trace if p.model == model]
        if not pts:
            continue
        xs = [p.spent for p in pts]
        target = model == res.target
        ax.step(xs, [p.best for p in pts], where="post", lw=2.4 if target else 1.1,
                alpha=1.0 if target else 0.55, label=f"{model}{' (target)' if target else ''}")
        ax.scatter(xs, [p.score for p in pts], s=10 if target else 6, alpha=0.5)
    search = res.budget.by_phase.get("search", 0.0)
    if res.budget.by_phase.get("confirm", 0.0) > 0:
        ax.axvline(search, color="grey", ls=":", lw=1)
        ax.text(search, ax.get_ylim()[0], " confirmation", color="grey", va="bottom", fontsize=8)
    ax.set_xlabel("compute-seconds spent (all finished segments, in the order they finished)")
    ax.set_ylabel(f"best {res.objective} so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return to_svg(fig)


def fidelity_map(res: StudyResults) -> str | None:
    """Every segment as a bar from its start step to the step it reached, one band per model."""
    if not res.segments:
        return None
    cols = colours(res)
    fig = _figure(7.5, 1.0 + 0.9 * len(res.models))
    ax = fig.add_subplot()
    per_model: dict[str, list[int]] = {m: [] for m in res.models}
    for s in res.segments:
        if s.run_id not in per_model[s.model]:
            per_model[s.model].append(s.run_id)
    seen: set[str] = set()
    for s in res.segments:
        band = res.models.index(s.model)
        runs = per_model[s.model]
        y = band - 0.38 + 0.76 * (runs.index(s.run_id) + 0.5) / max(len(runs), 1)
        key = outcome_key(s.stop_rule, s.outcome)
        end = max(s.end_step, s.start_step)
        ax.plot([s.start_step, end], [y, y], color=cols[key], lw=2.2, solid_capstyle="butt",
                label=None if key in seen else key)
        ax.plot([end], [y], marker="x" if s.outcome is Outcome.FAILED else "o", ms=3.2,
                color=cols[key])
        seen.add(key)
    ax.set_yticks(range(len(res.models)),
                  [f"{m}\n({res.model_params[m]:.3g} params)" for m in res.models], fontsize=8)
    ax.set_ylim(-0.5, len(res.models) - 0.5)
    ax.set_xlim(0, res.max_steps * 1.03)
    ax.set_xlabel("RL steps (each bar: one segment, from the step it resumed to the step reached)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return to_svg(fig)


def learning_curves(res: StudyResults) -> str | None:
    """Each run's objective against steps, one panel per model, coloured by how the run ended."""
    models = [m for m in res.models if any(r.model == m and r.curve for r in res.runs)]
    if not models:
        return None
    cols = colours(res)
    ncol = min(2, len(models))
    nrow = math.ceil(len(models) / ncol)
    fig = _figure(7.5, 2.6 * nrow + 0.4)
    axes = fig.subplots(nrow, ncol, squeeze=False, sharey=True)
    seen: set[str] = set()
    for i, model in enumerate(models):
        ax = axes[i // ncol][i % ncol]
        for r in res.runs:
            if r.model != model or not r.curve:
                continue
            key = outcome_key(r.stop_rule, r.outcome)
            xs, ys = zip(*r.curve)
            ax.plot(xs, ys, color=cols[key], lw=1.0, alpha=0.85, marker="." if len(xs) < 4 else None,
                    label=None if key in seen else key)
            seen.add(key)
        ax.set_title(f"{model}{' (target)' if model == res.target else ''}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        if i % ncol == 0:
            ax.set_ylabel(res.objective, fontsize=8)
    for j in range(len(models), nrow * ncol):
        axes[j // ncol][j % ncol].set_visible(False)
    fig.legend(fontsize=8, loc="outside lower center", ncols=min(len(seen), 4))
    return to_svg(fig)


def transfer_scatter(res: StudyResults) -> str | None:
    """Score on the smaller model against score on the larger one, one panel per model pair."""
    pairs = [t for t in res.transfer if t.points]
    if not pairs:
        return None
    ncol = min(3, len(pairs))
    nrow = math.ceil(len(pairs) / ncol)
    fig = _figure(7.5, 2.5 * nrow + 0.2)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for i, t in enumerate(pairs):
        ax = axes[i // ncol][i % ncol]
        xs, ys = zip(*t.points)
        ax.scatter(xs, ys, s=14, color="#264653")
        stats = (f"Spearman {t.spearman:.2f}, Kendall {t.kendall:.2f}"
                 if t.spearman is not None and t.kendall is not None else "too few to rank")
        ax.set_title(f"{t.small} vs {t.large}: n={t.n_configs}\n{stats}", fontsize=8)
        ax.set_xlabel(f"{t.small}", fontsize=8)
        ax.set_ylabel(f"{t.large}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for j in range(len(pairs), nrow * ncol):
        axes[j // ncol][j % ncol].set_visible(False)
    return to_svg(fig)


def parallel_coordinates(res: StudyResults, space: SearchSpace,
                         rows: Sequence[tuple[Mapping[str, Any], float]], label: str) -> str | None:
    """One line per configuration across the parameters' ranges (log where the space is log,
    categories evenly spaced), ending at its score; coloured by score, best drawn on top."""
    if len(rows) < 2:
        return None
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    names = list(space.names)
    scores = [v for _, v in rows]
    lo, hi = min(scores), max(scores)
    norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
    cmap = colormaps["viridis" if res.mode == "max" else "viridis_r"]
    fig = _figure(7.5, 3.4)
    ax = fig.add_subplot()
    n_axes = len(names) + 1
    order = sorted(rows, key=lambda r: r[1] if res.mode == "max" else -r[1])
    for config, value in order:
        ys = [float(space.params[i].encode(config[n])) for i, n in enumerate(names)]
        ys.append(float(norm(value)))
        ax.plot(range(n_axes), ys, color=cmap(norm(value)), lw=1.2, alpha=0.8)
    for i in range(n_axes):
        ax.axvline(i, color="black", lw=0.6)
    for i, p in enumerate(space.params):
        if isinstance(p, CategoricalParam):
            for j, c in enumerate(p.choices):
                pos = 0.5 if len(p.choices) == 1 else j / (len(p.choices) - 1)
                ax.text(i + 0.03, pos, str(c), fontsize=7, va="center")
        else:
            lo_v, hi_v = p.low, p.high
            ax.text(i + 0.03, 0.0, f"{lo_v:.3g}", fontsize=7, va="bottom")
            ax.text(i + 0.03, 1.0, f"{hi_v:.3g}", fontsize=7, va="top")
    ax.text(n_axes - 1 + 0.03, 0.0, f"{lo:.3g}", fontsize=7, va="bottom")
    ax.text(n_axes - 1 + 0.03, 1.0, f"{hi:.3g}", fontsize=7, va="top")
    ax.set_xticks(range(n_axes), [*names, res.objective], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.1, n_axes - 0.6)
    ax.set_title(label, fontsize=9)
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=res.objective, shrink=0.8)
    return to_svg(fig)


def importance_bars(importances: Sequence[tuple[str, float]], label: str) -> str | None:
    """Horizontal bars of parameter importances (shares of the explained variance)."""
    if not importances:
        return None
    fig = _figure(7.5, 0.6 + 0.4 * len(importances))
    ax = fig.add_subplot()
    names = [k for k, _ in importances][::-1]
    vals = [v for _, v in importances][::-1]
    ax.barh(names, vals, color="#457b9d")
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(vals) * 1.15))
    ax.set_xlabel("importance (share of the score's variance)", fontsize=8)
    ax.set_title(label, fontsize=9)
    return to_svg(fig)
