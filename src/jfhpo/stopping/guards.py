"""Guards against the GRPO/PPO failure modes seen in practice (see docs/stopping.md).

Each guard watches one symptom that the project's trainer notes collected from VeRL, TRL and
OpenRLHF issues: non-finite numbers, entropy collapse or explosion, persistent truncation, a dead
learning signal (every group scored alike), a KL spike far above its recent median, and validation
accuracy falling from the run's best. They read canonical metric names only, so the same guard
works on every backend. Thresholds are options; defaults are calibrated in bench/stopping/.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from jfhpo.records import StopReason
from jfhpo.stopping.base import RunHistory, StoppingRule, register_rule
from jfhpo.stopping.paper import finite_series, fmt, require, trailing_run
from jfhpo.view import StudyView

#: metrics whose non-finite value means the optimizer state is already broken
NON_FINITE_METRICS: tuple[str, ...] = ("grad_norm", "kl", "loss", "entropy", "reward")


@register_rule
class NonFinite(StoppingRule):
    """Any watched metric is NaN or infinite on ``patience`` consecutive reports (default 1).

    A NaN in the loss or gradient poisons the weights at the next optimizer step; runs never
    recover from it (verl #721, #2626). ``patience`` > 1 tolerates an isolated inf, e.g. from an
    fp16 loss scaler that skips the step.
    """

    name = "non_finite"

    def __init__(self, metrics: Sequence[str] = NON_FINITE_METRICS, patience: int = 1) -> None:
        require(
            isinstance(metrics, (list, tuple)) and all(isinstance(m, str) for m in metrics),
            self.name,
            "metrics",
            "a list of metric names",
            metrics,
        )
        require(patience >= 1, self.name, "patience", "an integer >= 1", patience)
        self.metrics, self.patience = tuple(metrics), int(patience)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        streak: list[int] = []
        for obs in run.observations:
            bad = [
                (m, float(obs.metrics[m]))
                for m in self.metrics
                if m in obs.metrics and not math.isfinite(float(obs.metrics[m]))
            ]
            if not bad:
                streak = []
                continue
            streak.append(obs.step)
            if len(streak) >= self.patience:
                step = streak[-1]
                names = ", ".join(f"{m}={v}" for m, v in bad)
                return StopReason(
                    self.name,
                    f"non-finite value at step {step} ({names})"
                    + (f" on {len(streak)} reports in a row" if self.patience > 1 else ""),
                )
        return None


def _start_value(values: list[tuple[int, float]], n: int) -> float | None:
    """Mean of the first ``n`` values: the run's starting level, less noisy than step 1 alone."""
    if len(values) < n:
        return None
    return statistics.fmean(v for _, v in values[:n])


@register_rule
class EntropyCollapse(StoppingRule):
    """Entropy below ``ratio`` x its start value for ``k`` steps, with no validation gain since.

    The start value is the mean of the first ``start_steps`` entropy reports. Collapse only counts
    before ``before`` x the budget (late low entropy is often convergence, not collapse), and a run
    whose ``eval_metric`` improved after the entropy fell is left alone.
    """

    name = "entropy_collapse"

    def __init__(
        self,
        ratio: float = 0.2,
        k: int = 3,
        start_steps: int = 3,
        before: float = 0.5,
        eval_metric: str = "eval_accuracy",
    ) -> None:
        require(0 < ratio < 1, self.name, "ratio", "a number between 0 and 1", ratio)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(start_steps >= 1, self.name, "start_steps", "an integer >= 1", start_steps)
        require(0 < before <= 1, self.name, "before", "a fraction in (0, 1]", before)
        self.ratio, self.k, self.start_steps = float(ratio), int(k), int(start_steps)
        self.before, self.eval_metric = float(before), eval_metric

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        ent = finite_series(run, "entropy")
        start = _start_value(ent, self.start_steps)
        if start is None or start <= 0 or len(ent) < self.start_steps + self.k:
            return None
        if ent[-1][0] > self.before * run.max_steps:
            return None
        limit = self.ratio * start
        n = trailing_run([v < limit for _, v in ent[self.start_steps :]])
        if n < self.k:
            return None
        since = ent[-n][0]
        evals = finite_series(run, self.eval_metric)
        before = [v for s, v in evals if s < since]
        after = [v for s, v in evals if s >= since]
        if before and after and max(after) > max(before):
            return None
        return StopReason(
            self.name,
            f"entropy fell below {self.ratio:.0%} of its start value ({fmt(start)}) for {n} "
            f"steps in a row (step {since}: {fmt(ent[-n][1])}, step {ent[-1][0]}: "
            f"{fmt(ent[-1][1])}) without a validation gain",
        )


@register_rule
class EntropyExplosion(StoppingRule):
    """Entropy above ``ratio`` x its start value (mean of the first ``start_steps``), ``k`` steps.

    Steadily rising entropy ends in collapse (verl #651); a trebling means the policy is close to
    uniform noise.
    """

    name = "entropy_explosion"

    def __init__(self, ratio: float = 3.0, k: int = 3, start_steps: int = 3) -> None:
        require(ratio > 1, self.name, "ratio", "a number > 1", ratio)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(start_steps >= 1, self.name, "start_steps", "an integer >= 1", start_steps)
        self.ratio, self.k, self.start_steps = float(ratio), int(k), int(start_steps)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        ent = finite_series(run, "entropy")
        start = _start_value(ent, self.start_steps)
        if start is None or start <= 0:
            return None
        limit = self.ratio * start
        n = trailing_run([v > limit for _, v in ent[self.start_steps :]])
        if n < self.k:
            return None
        return StopReason(
            self.name,
            f"entropy rose above {fmt(self.ratio)}x its start value ({fmt(start)}) for {n} steps "
            f"in a row (now {fmt(ent[-1][1])} at step {ent[-1][0]})",
        )


@register_rule
class Truncation(StoppingRule):
    """More than ``threshold`` of the responses hit the length cap for ``k`` steps in a row.

    Counted after ``warmup`` steps. VeRL's guidance is that a truncation share above 0.1 already
    means too much is cut; persistent truncation precedes length explosion and collapse.
    """

    name = "truncation"

    def __init__(self, threshold: float = 0.2, k: int = 3, warmup: int = 0) -> None:
        require(0 <= threshold < 1, self.name, "threshold", "a fraction in [0, 1)", threshold)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(warmup >= 0, self.name, "warmup", "an integer >= 0", warmup)
        self.threshold, self.k, self.warmup = float(threshold), int(k), int(warmup)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        tr = [(s, v) for s, v in finite_series(run, "truncation") if s > self.warmup]
        n = trailing_run([v > self.threshold for _, v in tr])
        if n < self.k:
            return None
        return StopReason(
            self.name,
            f"more than {self.threshold:.0%} of responses were truncated for {n} steps in a row "
            f"(steps {tr[-n][0]} to {tr[-1][0]}, last {tr[-1][1]:.0%})",
        )


@register_rule
class DeadSignal(StoppingRule):
    """More than ``threshold`` of the groups had zero reward spread for ``k`` steps in a row.

    Counted after ``warmup`` steps. A group whose completions all score alike has zero advantage,
    so it contributes no policy gradient (trl #3857); when nearly every group is like that the run
    no longer learns.
    """

    name = "dead_signal"

    def __init__(self, threshold: float = 0.95, k: int = 5, warmup: int = 0) -> None:
        require(0 <= threshold < 1, self.name, "threshold", "a fraction in [0, 1)", threshold)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(warmup >= 0, self.name, "warmup", "an integer >= 0", warmup)
        self.threshold, self.k, self.warmup = float(threshold), int(k), int(warmup)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        z = [(s, v) for s, v in finite_series(run, "zero_std_frac") if s > self.warmup]
        n = trailing_run([v > self.threshold for _, v in z])
        if n < self.k:
            return None
        return StopReason(
            self.name,
            f"more than {self.threshold:.0%} of groups had identical rewards for {n} steps in a "
            f"row (steps {z[-n][0]} to {z[-1][0]}): no learning signal",
        )


@register_rule
class KLRunaway(StoppingRule):
    """KL above ``factor`` x its median over the ``window`` reports before, ``k`` reports in a row.

    The median must be at least ``min_kl`` (tiny KLs at the start jump by large factors without
    meaning anything). A single spike is not enough (``k`` = 2 by default): the recorded tiny runs
    show isolated 20x spikes that the next step undoes. With ``with_reward_drop`` the spike only
    counts when the mean reward of the last ``drop_steps`` reports is below the mean reward of the
    window before the spike.
    """

    name = "kl_runaway"

    def __init__(
        self,
        factor: float = 10.0,
        window: int = 10,
        k: int = 2,
        min_kl: float = 1e-3,
        with_reward_drop: bool = True,
        drop_steps: int = 2,
    ) -> None:
        require(factor > 1, self.name, "factor", "a number > 1", factor)
        require(window >= 1, self.name, "window", "an integer >= 1", window)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        require(min_kl >= 0, self.name, "min_kl", "a number >= 0", min_kl)
        require(drop_steps >= 1, self.name, "drop_steps", "an integer >= 1", drop_steps)
        self.factor, self.window, self.k = float(factor), int(window), int(k)
        self.min_kl = float(min_kl)
        self.with_reward_drop, self.drop_steps = bool(with_reward_drop), int(drop_steps)

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        kl = finite_series(run, "kl")
        if len(kl) < self.window + self.k:
            return None
        streak = kl[-self.k :]
        med = statistics.median(v for _, v in kl[-(self.window + self.k) : -self.k])
        if med < self.min_kl or any(v <= self.factor * med for _, v in streak):
            return None
        extra = ""
        if self.with_reward_drop:
            rew = finite_series(run, "reward")
            if len(rew) < self.window + self.drop_steps:
                return None
            recent = statistics.fmean(v for _, v in rew[-self.drop_steps :])
            start = -(self.window + self.drop_steps)
            earlier = statistics.fmean(v for _, v in rew[start : -self.drop_steps])
            if recent >= earlier:
                return None
            extra = f", while the reward fell from {fmt(earlier)} to {fmt(recent)}"
        step, cur = kl[-1]
        return StopReason(
            self.name,
            f"KL stayed above {fmt(self.factor)}x its median {fmt(med)} of the {self.window} "
            f"steps before for {self.k} steps in a row (now {fmt(cur)} at step {step}, "
            f"{fmt(cur / med)}x){extra}",
        )


@register_rule
class EvalDrop(StoppingRule):
    """Validation ``metric`` is more than ``delta`` below the run's best on ``k`` evaluations in
    a row (absolute difference: accuracies are fractions).

    One bad evaluation on a small validation set is noise; two in a row well below the best
    rarely are. The best checkpoint is the registry's business, not this rule's.
    """

    name = "eval_drop"

    def __init__(self, delta: float = 0.1, k: int = 2, metric: str = "eval_accuracy") -> None:
        require(delta > 0, self.name, "delta", "a positive number", delta)
        require(k >= 1, self.name, "k", "an integer >= 1", k)
        self.delta, self.k, self.metric = float(delta), int(k), metric

    def check(self, run: RunHistory, view: StudyView) -> StopReason | None:
        ev = finite_series(run, self.metric)
        if len(ev) < self.k + 1:
            return None
        best_step, best = max(ev, key=lambda t: t[1])
        tail = ev[-self.k :]
        if not all(best - v > self.delta for _, v in tail):
            return None
        shown = ", ".join(f"{fmt(v)} at step {s}" for s, v in tail)
        return StopReason(
            self.name,
            f"{self.metric} fell more than {fmt(self.delta)} below its best {fmt(best)} "
            f"(step {best_step}) on {self.k} evaluations in a row: {shown}",
        )
