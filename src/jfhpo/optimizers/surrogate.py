"""The JF-HPO surrogate: one GP over (configuration, model size, steps), and a cost model.

Why one GP over both fidelity axes: a learning-rate optimum that moves with model size, or a
configuration that starts fast and plateaus low, are interactions between the configuration and
the fidelity. A product (ARD) kernel over the joint input lets the data decide how far a 0.5B
proxy at 30 steps speaks for the target at the full budget, instead of assuming it.

Inputs (all in [0, 1]):
  * the configuration encoded by ``SearchSpace.encode`` (d coordinates);
  * the model-size feature ``log10(params)`` rescaled over the ladder (smallest proxy 0, target 1);
  * the step feature ``log(steps) / log(max_steps)`` (1 at the full budget).
Outcomes are standardized by hand (mean 0, unit variance) so that pending runs can be fantasized
in the same units without refitting (kriging believer, see ``GPSurrogate.with_fantasies``).

The cost model lives in ``jfhpo.cost`` (one for the whole engine); it is re-exported here for
readers of this module.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gpytorch
import numpy as np
import torch

from jfhpo.cost import CostModel
from jfhpo.fidelity import ModelLadder, StepBudget
from jfhpo.records import RunRecord
from jfhpo.space import SearchSpace

__all__ = [
    "CostModel",
    "DriftKernel",
    "FidelityFeatures",
    "GPSurrogate",
    "TrainingSet",
    "single_thread",
    "training_set",
]

DTYPE = torch.float64


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (and restore the setting after).

    The GP's matrices are at most a few hundred rows: threading gains nothing there, while on a
    machine shared with trainers, thread contention made one suggestion 40x slower in our tests.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FidelityFeatures:
    """Turn (configuration, model, steps) into the surrogate's input row in [0, 1]^(d+2)."""

    def __init__(self, space: SearchSpace, ladder: ModelLadder, steps: StepBudget) -> None:
        self.space = space
        self.ladder = ladder
        sizes = [r.size_feature for r in ladder.rungs]
        self._lo, self._span = min(sizes), max(sizes) - min(sizes)
        self._log_max = math.log(steps.max_steps)
        self.max_steps = steps.max_steps

    @property
    def dim(self) -> int:
        return self.space.dim + 2

    def size(self, model: str) -> float:
        """0 for the smallest proxy, 1 for the target (1 as well for a one-model ladder)."""
        if self._span <= 0:
            return 1.0
        return (self.ladder[model].size_feature - self._lo) / self._span

    def step(self, steps: float) -> float:
        if self._log_max <= 0:
            return 1.0
        return float(min(max(math.log(max(steps, 1.0)) / self._log_max, 0.0), 1.0))

    def row(self, u: np.ndarray, model: str, steps: float) -> np.ndarray:
        return np.concatenate([u, [self.size(model), self.step(steps)]])

    def rows(self, u: np.ndarray, model: str, steps: float) -> np.ndarray:
        """Rows for a batch of encoded configurations ``u`` (n, d) at one fidelity."""
        fid = np.array([self.size(model), self.step(steps)])
        return np.hstack([u, np.broadcast_to(fid, (u.shape[0], 2))])


@dataclass(frozen=True)
class TrainingSet:
    """Surrogate inputs ``X`` (n, d+2) and objectives ``y`` (n,), higher is better."""

    X: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _thin(points: list[tuple[int, float]], keep: int) -> list[tuple[int, float]]:
    """Keep the last point and ``keep - 1`` others spread evenly over the earlier ones."""
    if len(points) <= keep:
        return points
    if keep <= 1:
        return points[-1:]
    idx = np.unique(np.round(np.linspace(0, len(points) - 2, keep - 1)).astype(int))
    return [points[i] for i in idx] + [points[-1]]


def _run_points(run: RunRecord) -> list[tuple[int, float]]:
    """A run's evaluation points in step order, one per step, the final score included."""
    by_step: dict[int, float] = {}
    for s, v in run.curve:
        if s > 0 and math.isfinite(v):
            by_step[int(s)] = float(v)
    if run.score is not None and math.isfinite(run.score) and run.steps_done > 0:
        by_step[int(run.steps_done)] = float(run.score)
    return sorted(by_step.items())


_RunPoints = tuple[RunRecord, list[tuple[int, float]]]


def training_set(
    runs: Iterable[RunRecord],
    features: FidelityFeatures,
    *,
    max_points_per_run: int = 8,
    max_points: int = 300,
    stopped_score: str = "floor",
) -> TrainingSet:
    """Collect the surrogate's training points from every run's learning curve.

    Every evaluation point of every run teaches the surrogate (curves, not only final scores),
    thinned to ``max_points_per_run`` per run (the last always kept) and to ``max_points`` in all:
    when there are too many runs, the per-run allowance shrinks, and at one point per run the final
    points of runs on larger models and with more steps are kept first (then the most recent).

    Failed runs are left out. A stopped run keeps its observed points; with ``stopped_score ==
    "floor"`` it also gets one pseudo-observation at the full step budget on its model, equal to the
    lower of its last objective and the 10th percentile of all observed objectives: a rule ended it
    because its training went wrong, so the surrogate must not extrapolate its curve upwards.
    With ``"last"`` only its observed points are used.
    """
    per_run: list[_RunPoints] = []
    for run in runs:
        if run.failed:
            continue
        pts = _run_points(run)
        if pts:
            per_run.append((run, pts))
    if not per_run:
        return TrainingSet(np.zeros((0, features.dim)), np.zeros(0))
    all_values = np.array([v for _, pts in per_run for _, v in pts])
    floor = float(np.quantile(all_values, 0.1))

    def build(keep: int, chosen: Sequence[_RunPoints]) -> TrainingSet:
        rows: list[np.ndarray] = []
        ys: list[float] = []
        for run, pts in chosen:
            u = features.space.encode(run.config)
            for s, v in _thin(pts, keep):
                rows.append(features.row(u, run.model, s))
                ys.append(v)
            if run.stopped is not None and stopped_score == "floor":
                last_step = pts[-1][0]
                if last_step < features.max_steps:
                    rows.append(features.row(u, run.model, features.max_steps))
                    ys.append(min(pts[-1][1], floor))
        return TrainingSet(np.asarray(rows, dtype=float), np.asarray(ys, dtype=float))

    keep = max_points_per_run
    n_stopped = sum(1 for r, _ in per_run if r.stopped is not None and stopped_score == "floor")
    while keep > 1:
        total = sum(min(len(p), keep) for _, p in per_run) + n_stopped
        if total <= max_points:
            return build(keep, per_run)
        keep -= 1
    if len(per_run) + n_stopped > max_points:
        ladder = features.ladder
        ranked = sorted(
            per_run,
            key=lambda t: (ladder.index(t[0].model), t[1][-1][0], t[0].run_id),
            reverse=True,
        )
        per_run = ranked[: max(max_points // 2, 1)]
    return build(1, per_run)


class DriftKernel(gpytorch.kernels.Kernel):
    """A kernel whose continuous configuration inputs move with model size (a learned drift).

    Scaling-law studies find the best learning rate moving as a power of the parameter count, so
    in encoded (log) coordinates the optimum moves linearly in the size feature ``s``. The kernel
    compares ``u_j + a_j * s`` instead of ``u_j`` for every drift dimension ``j``: with the right
    ``a``, the function is the same surface at every size, a stationary kernel fits it, and the
    posterior at the target (``s = 1``) extrapolates the shift seen along the ladder. ``a`` (one
    number per continuous hyperparameter, a Normal(0, 0.5) prior: no drift unless the data say so)
    is fitted with the other hyperparameters by marginal likelihood.
    """

    def __init__(self, base: gpytorch.kernels.Kernel, dims: Sequence[int], size_col: int) -> None:
        super().__init__()
        self.base = base
        self.dims = tuple(int(d) for d in dims)
        self.size_col = int(size_col)
        self.register_parameter("drift", torch.nn.Parameter(torch.zeros(len(dims), dtype=DTYPE)))
        self.register_prior("drift_prior", gpytorch.priors.NormalPrior(0.0, 0.5),
                            lambda m: m.drift)

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with ``drift * size`` added to the drift columns."""
        shift = torch.zeros(x.shape[-1], dtype=x.dtype)
        shift = shift.index_put((torch.as_tensor(self.dims, dtype=torch.long),), self.drift)
        return x + x[..., self.size_col : self.size_col + 1] * shift

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False,
                **params: Any) -> torch.Tensor:
        return self.base.forward(self.warp(x1), self.warp(x2), diag=diag, **params)


def drift_guess(data: TrainingSet, dims: Sequence[int]) -> np.ndarray:
    """A starting point for the drift: minus the slope of the best point's coordinates against
    the size feature, over the sizes that have at least three points at their longest step.

    The marginal likelihood has a local optimum at "no drift, sizes unrelated" (a short size
    lengthscale); starting from where the ladder's observed optima point avoids it. Zero when
    fewer than two sizes qualify."""
    X, y = data.X, data.y
    if len(y) == 0 or not dims:
        return np.zeros(len(dims))
    size, step = X[:, -2], X[:, -1]
    sizes, best = [], []
    for sz in np.unique(size):
        at = size == sz
        top = step[at].max()
        pick = at & (step >= top - 1e-9)
        if pick.sum() < 3:
            continue
        i = int(np.flatnonzero(pick)[np.argmax(y[pick])])
        sizes.append(sz)
        best.append(X[i, list(dims)])
    if len(sizes) < 2 or np.ptp(sizes) <= 0:
        return np.zeros(len(dims))
    S = np.asarray(sizes)
    B = np.asarray(best)
    slope = ((S - S.mean())[:, None] * (B - B.mean(0))).sum(0) / ((S - S.mean()) ** 2).sum()
    return np.asarray(np.clip(-slope, -1.0, 1.0))


class GPSurrogate:
    """A fitted ``SingleTaskGP`` (RBF-ARD kernel, learned noise) on standardized objectives.

    Predictions come back in standardized units (``y_mean``/``y_std`` convert them); EI per cost
    ratios do not depend on the unit. Hyperparameters are fitted with L-BFGS capped at
    ``fit_maxiter`` iterations, under a torch seed drawn from the study's RNG, so the same view
    gives the same model.
    """

    def __init__(
        self,
        data: TrainingSet,
        *,
        seed: int,
        fit_maxiter: int = 60,
        drift_dims: Sequence[int] = (),
        _state: dict[str, torch.Tensor] | None = None,
        _scale: tuple[float, float] | None = None,
    ) -> None:
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.mlls import ExactMarginalLogLikelihood

        if len(data) < 1:
            raise ValueError("the surrogate needs at least one observation")
        if _scale is None:
            mean = float(np.mean(data.y))
            std = float(np.std(data.y))
            _scale = (mean, std if std > 1e-12 else 1.0)
        self.y_mean, self.y_std = _scale
        self.data = data
        X = torch.as_tensor(data.X, dtype=DTYPE)
        Y = torch.as_tensor((data.y - self.y_mean) / self.y_std, dtype=DTYPE).unsqueeze(-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = SingleTaskGP(X, Y, outcome_transform=None)
            if drift_dims:
                self.model.covar_module = DriftKernel(
                    self.model.covar_module, drift_dims, X.shape[-1] - 2).to(DTYPE)
                if _state is None:
                    guess = torch.as_tensor(drift_guess(data, drift_dims), dtype=DTYPE)
                    self.model.covar_module.drift.data.copy_(guess)
            if _state is not None:
                self.model.load_state_dict(_state)
            else:
                mll = ExactMarginalLogLikelihood(self.model.likelihood, self.model)
                # L-BFGS makes about 1.5 evaluations per iteration; with many points each costs
                # more, so they are capped at ``fit_maxiter`` too (keeps a decision at 500
                # observations under 1 s of CPU, bench/optimizer/suggest_time.py)
                options: dict[str, int] = {"maxiter": fit_maxiter}
                if len(data) >= 250:
                    options["maxfun"] = fit_maxiter
                with torch.random.fork_rng():
                    torch.manual_seed(seed)
                    fit_gpytorch_mll(
                        mll,
                        optimizer_kwargs={"options": options},
                        max_attempts=2,
                    )
        self.model.eval()
        self._seed = seed
        self._drift_dims = tuple(drift_dims)
        self._chol: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ref: tuple[Any, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    @property
    def noise_var(self) -> float:
        """The learned observation noise variance (standardized units)."""
        return float(self.model.likelihood.noise.detach().mean())

    def _base_kernel(self) -> gpytorch.kernels.Kernel:
        k = self.model.covar_module
        return k.base if isinstance(k, DriftKernel) else k

    def lengthscales(self) -> np.ndarray:
        ls: torch.Tensor = self._base_kernel().lengthscale
        return ls.detach().numpy().reshape(-1).copy()

    def drift(self) -> np.ndarray:
        """The fitted drift per drift dimension (encoded units per unit of the size feature)."""
        if not self._drift_dims:
            return np.zeros(0)
        drift: torch.Tensor = self.model.covar_module.drift
        return drift.detach().numpy().copy()

    def with_fantasies(self, X_pending: np.ndarray) -> GPSurrogate:
        """A copy that also 'observed' its own posterior mean at ``X_pending`` (kriging believer).

        Hyperparameters and the standardization are kept; only the conditioning data grow, so the
        posterior variance shrinks around pending runs and parallel workers spread out.
        """
        if X_pending.shape[0] == 0:
            return self
        mean, _ = self.predict(X_pending)
        y_fant = mean * self.y_std + self.y_mean
        data = TrainingSet(
            np.vstack([self.data.X, X_pending]), np.concatenate([self.data.y, y_fant])
        )
        state = {k: v.clone() for k, v in self.model.state_dict().items()}
        return GPSurrogate(
            data, seed=self._seed, drift_dims=self._drift_dims, _state=state,
            _scale=(self.y_mean, self.y_std)
        )

    def _cache(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cholesky factor of the noisy training covariance and the weights K^-1 (y - m)."""
        if self._chol is None:
            with torch.no_grad():
                X = self.model.train_inputs[0]
                y = self.model.train_targets
                K = self.model.covar_module(X).to_dense()
                K = K + self.noise_var * torch.eye(K.shape[0], dtype=DTYPE)
                L, _ = torch.linalg.cholesky_ex(K + 1e-8 * torch.eye(K.shape[0], dtype=DTYPE))
                resid = (y - self.model.mean_module(X)).unsqueeze(-1)
                alpha = torch.cholesky_solve(resid, L)
            self._chol = (L, alpha)
        return self._chol

    def _parts(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior mean, prior variance, and the whitened cross-covariance L^-1 k(X_train, X)."""
        L, alpha = self._cache()
        Xq = torch.as_tensor(X, dtype=DTYPE)
        Xt = self.model.train_inputs[0]
        with torch.no_grad():
            Kqt = self.model.covar_module(Xq, Xt).to_dense()  # (n, N)
            mean = self.model.mean_module(Xq) + (Kqt @ alpha).squeeze(-1)
            prior = self.model.covar_module(Xq, Xq, diag=True)
            V = torch.linalg.solve_triangular(L, Kqt.T, upper=False)  # (N, n)
        return mean, prior, V

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent objective (standardized)."""
        mean, prior, V = self._parts(X)
        var = (prior - (V * V).sum(0)).clamp_min(1e-12)
        return mean.numpy().copy(), np.sqrt(var.numpy())

    def pair(self, X1: np.ndarray, X2: np.ndarray) -> tuple[np.ndarray, ...]:
        """Joint posterior of f at ``X1[i]`` and ``X2[i]`` for each i.

        Returns ``(mean1, var1, mean2, var2, cov12)``, arrays of shape (n,), standardized.
        Computed from one Cholesky factor of the training covariance (exact GP algebra), which is
        much cheaper than asking the model for n batched 2-point posteriors.
        """
        m1, p1, V1 = self._parts(X1)
        key = (X2.shape, X2.tobytes())
        if self._ref is None or self._ref[0] != key:  # the same reference rows for every fidelity
            self._ref = (key, self._parts(X2))
        m2, p2, V2 = self._ref[1]
        with torch.no_grad():
            k12 = self.model.covar_module(
                torch.as_tensor(X1, dtype=DTYPE), torch.as_tensor(X2, dtype=DTYPE), diag=True
            )
        var1 = (p1 - (V1 * V1).sum(0)).clamp_min(1e-12)
        var2 = (p2 - (V2 * V2).sum(0)).clamp_min(1e-12)
        cov = k12 - (V1 * V2).sum(0)
        return (
            m1.numpy().copy(),
            var1.numpy().copy(),
            m2.numpy().copy(),
            var2.numpy().copy(),
            cov.numpy().copy(),
        )
