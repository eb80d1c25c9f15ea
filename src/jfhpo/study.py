"""Study: the state of a search, rebuilt from its SQLite file and kept current in memory.

Every change goes to storage first and then to the in-memory mirror, so the mirror is always what
a fresh ``Study.open`` would rebuild. Decision logic gets a ``StudyView`` from ``view()``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from jfhpo.fidelity import ModelLadder, StepBudget
from jfhpo.records import (
    Observation,
    Phase,
    RunRecord,
    SegmentRecord,
    SegmentStatus,
    StopReason,
)
from jfhpo.space import SearchSpace
from jfhpo.spec import StudySpec, parse_spec
from jfhpo.storage import Storage, StorageError
from jfhpo.view import StudyView, TransferRecord

DB_NAME = "study.sqlite"


@dataclass
class _Run:
    run_id: int
    suggestion_id: int
    config: dict[str, Any]
    model: str
    phase: Phase
    seed: int
    segments: list[SegmentRecord] = field(default_factory=list)
    effective_config: dict[str, Any] | None = None  # as the backend trains it (None: unknown)


@dataclass(frozen=True)
class SuggestionRow:
    """A stored decision: start a run, or extend one."""

    suggestion_id: int
    kind: str  # "start" | "extend"
    steps: int
    phase: Phase
    run_id: int | None
    config: Mapping[str, Any] | None
    model: str | None


class Study:
    """A study folder: ``study.sqlite`` plus ``checkpoints/``."""

    def __init__(self, folder: Path, storage: Storage, spec: StudySpec, objective: str) -> None:
        self.folder = folder
        self.storage = storage
        self.spec = spec
        self.objective = objective
        self.sign = 1.0 if spec.objective.mode == "max" else -1.0
        self.space: SearchSpace = spec.search_space()
        self.ladder: ModelLadder = spec.ladder()
        self.steps: StepBudget = spec.step_budget()
        self.suggestions: list[SuggestionRow] = []
        self.runs: dict[int, _Run] = {}
        self.segments: dict[int, SegmentRecord] = {}
        self.obs: dict[int, list[Observation]] = {}  # run_id -> observations (live segments only)
        self.checkpoints: dict[tuple[int, int], tuple[str, int]] = {}  # live ones: path, bytes
        self.phase = Phase.SEARCH
        self.transfer: tuple[TransferRecord, ...] = ()
        self.warnings: list[str] = []
        self._load()

    # ---- creation and loading --------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path, spec: StudySpec, objective: str) -> Study:
        folder = Path(folder)
        if (folder / DB_NAME).exists():
            raise FileExistsError(
                f"{folder} already holds a study; use `jfhpo resume {folder}` or another --out"
            )
        folder.mkdir(parents=True, exist_ok=True)
        storage = Storage(folder / DB_NAME, create=True)
        storage.set_meta("spec", spec.to_yaml())
        storage.set_meta("objective", objective)
        storage.set_meta("phase", Phase.SEARCH.value)
        storage.set_meta("wall_used", "0")
        storage.add_event("created", {"name": spec.name, "seed": spec.seed})
        return cls(folder, storage, spec, objective)

    @classmethod
    def open(cls, folder: str | Path, *, readonly: bool = False) -> Study:
        """Load a study folder. ``readonly``: never write (status, best, reports; works on a
        read-only folder and beside a running writer). A corrupt database is a StorageError."""
        import sqlite3

        folder = Path(folder)
        db = folder / DB_NAME
        if not db.exists():
            raise StorageError(f"{folder} is not a study folder (no {DB_NAME})")
        storage = Storage(db, readonly=readonly)
        try:
            meta = storage.meta()
            if "spec" not in meta or "objective" not in meta:
                raise StorageError(f"{db} is not a jfhpo study database (no study file in it)")
            if meta.get("spec_dir"):
                from jfhpo.backends.base import add_backend_path

                add_backend_path(meta["spec_dir"])  # where a `module:Class` backend was found
            spec = parse_spec(yaml.safe_load(meta["spec"]))
            return cls(folder, storage, spec, meta["objective"])
        except sqlite3.Error as exc:
            storage.close()
            raise StorageError(f"{db} cannot be read ({exc}); the file is damaged") from None
        except StorageError:
            storage.close()
            raise

    def _load(self) -> None:
        with self.storage.snapshot():
            self._load_tables()
        self.refresh_transfer(store=False)

    def _load_tables(self) -> None:
        st = self.storage
        meta = st.meta()
        self.phase = Phase(meta.get("phase", "search"))
        for r in st.rows("suggestions"):
            self.suggestions.append(SuggestionRow(
                r["id"], r["kind"], r["steps"], Phase(r["phase"]), r["run_id"],
                st.loads(r["config"]), r["model"]))
        for r in st.rows("runs"):
            eff = st.loads(r["effective_config"]) if "effective_config" in r.keys() else None  # noqa: SIM118
            self.runs[r["id"]] = _Run(r["id"], r["suggestion_id"], st.loads(r["config"]),
                                      r["model"], Phase(r["phase"]), r["seed"],
                                      effective_config=eff)
        for r in st.rows("segments"):
            seg = SegmentRecord(
                r["id"], r["run_id"], r["suggestion_id"], r["start_step"], r["target_step"],
                SegmentStatus(r["status"]), r["end_step"], r["score"], r["cost"],
                StopReason(r["reason_rule"], r["reason_msg"]) if r["reason_rule"] else None,
                r["error"], r["wall"],
            )
            self.segments[seg.segment_id] = seg
        live = {s.segment_id for s in self.segments.values()
                if s.status is not SegmentStatus.INTERRUPTED}
        for r in st.rows("observations"):
            if r["segment_id"] in live:
                self.obs.setdefault(r["run_id"], []).append(
                    Observation(r["run_id"], r["segment_id"], r["step"], st.loads(r["metrics"])))
        for r in st.rows("checkpoints", order="run_id, step"):
            if r["released"] is None:
                self.checkpoints[(r["run_id"], r["step"])] = (r["path"], r["bytes"])
        for r in st.rows("events"):
            if r["kind"] == "warning":
                self.warnings.append(st.loads(r["payload"])["message"])

    def refresh_transfer(self, store: bool = True,
                         runs: Sequence[RunRecord] | None = None) -> tuple[TransferRecord, ...]:
        """Measure how well each smaller model ranks configurations against each larger one
        (Spearman, Kendall); stored as an event whenever the figures change. ``runs``: the
        current run records, when the caller has them already."""
        from jfhpo.transfer import measure_transfer

        if runs is None:
            runs = [self.run_record(r) for r in sorted(self.runs)]
        new = measure_transfer(runs, self.ladder, self.space)
        if store and new != self.transfer and new:
            self.storage.add_event("transfer", {"records": [dataclasses.asdict(t) for t in new]})
        self.transfer = new
        return new

    # ---- writes (storage first, then the mirror) ------------------------------------------
    def add_suggestion(self, kind: str, steps: int, phase: Phase, *, run_id: int | None = None,
                       config: Mapping[str, Any] | None = None, model: str | None = None) -> int:
        sid = self.storage.add_suggestion(kind, steps, phase.value, run_id=run_id, config=config,
                                          model=model)
        self.suggestions.append(SuggestionRow(sid, kind, steps, phase, run_id,
                                              None if config is None else dict(config), model))
        return sid

    def add_run(self, suggestion_id: int, config: Mapping[str, Any], model: str,
                phase: Phase, effective_config: Mapping[str, Any] | None = None) -> int:
        """Record a new run; ``effective_config`` is the configuration as the backend trains it
        (recipe, then the study's fixed keys, then the searched ones)."""
        seed = (self.spec.seed * 1_000_003 + len(self.runs) + 1) % (2**31 - 1)
        eff = None if effective_config is None else dict(effective_config)
        rid = self.storage.add_run(suggestion_id, config, model, phase.value, seed, eff)
        self.runs[rid] = _Run(rid, suggestion_id, dict(config), model, phase, seed,
                              effective_config=eff)
        return rid

    def add_segment(self, run_id: int, suggestion_id: int, start: int, target: int) -> int:
        sid = self.storage.add_segment(run_id, suggestion_id, start, target,
                                       int(SegmentStatus.QUEUED))
        self.segments[sid] = SegmentRecord(sid, run_id, suggestion_id, start, target,
                                           SegmentStatus.QUEUED)
        return sid

    def update_segment(self, segment_id: int, **fields: Any) -> None:
        self.storage.update_segment(segment_id, **fields)
        seg = self.segments[segment_id]
        changes: dict[str, Any] = {}
        for k, v in fields.items():
            if k == "status":
                changes["status"] = SegmentStatus(v)
            elif k in ("end_step", "score", "cost", "error", "wall"):
                changes[k] = v
        if "reason_rule" in fields:
            changes["reason"] = StopReason(fields["reason_rule"], fields.get("reason_msg", ""))
        self.segments[segment_id] = dataclasses.replace(seg, **changes)

    def add_observation(self, segment_id: int, step: int, metrics: Mapping[str, Any]) -> Observation:
        seg = self.segments[segment_id]
        clean = self.storage.add_observation(segment_id, seg.run_id, step, metrics)
        ob = Observation(seg.run_id, segment_id, step, MappingProxyType(clean))
        self.obs.setdefault(seg.run_id, []).append(ob)
        return ob

    def add_checkpoint(self, run_id: int, step: int, path: str, nbytes: int) -> None:
        self.storage.add_checkpoint(run_id, step, path, nbytes)
        self.checkpoints[(run_id, step)] = (path, nbytes)

    def release_checkpoint(self, run_id: int, step: int) -> None:
        self.storage.release_checkpoint(run_id, step)
        self.checkpoints.pop((run_id, step), None)

    def set_phase(self, phase: Phase) -> None:
        self.storage.set_meta("phase", phase.value)
        self.phase = phase

    def set_spec_dir(self, folder: str | Path) -> None:
        """Remember the study file's folder, where a ``module:Class`` backend may live, so that
        ``jfhpo resume`` finds it again."""
        self.storage.set_meta("spec_dir", str(folder))

    def set_recipe(self, config: Mapping[str, Any]) -> None:
        """Remember the backend's recipe configuration (the no-search baseline)."""
        self.storage.set_meta("recipe", json.dumps(dict(config), sort_keys=True))

    def recipe(self) -> dict[str, Any] | None:
        text = self.storage.meta().get("recipe")
        return None if text is None else dict(json.loads(text))

    def warn(self, message: str) -> bool:
        """Record a warning once; True when it is new (so callers show it once)."""
        if message in self.warnings:
            return False
        self.storage.add_event("warning", {"message": message})
        self.warnings.append(message)
        return True

    def mark_interrupted(self) -> list[SegmentRecord]:
        """Segments left queued or running by a dead process: mark them interrupted, drop their
        observations from the mirror (they stay in the file) and return them for a re-run."""
        lost = [s for s in self.segments.values()
                if s.status in (SegmentStatus.QUEUED, SegmentStatus.RUNNING)]
        for s in lost:
            self.update_segment(s.segment_id, status=int(SegmentStatus.INTERRUPTED))
            self.obs[s.run_id] = [o for o in self.obs.get(s.run_id, [])
                                  if o.segment_id != s.segment_id]
        if lost:
            self.storage.add_event("resumed", {"interrupted": [s.segment_id for s in lost]})
        return sorted(lost, key=lambda s: s.segment_id)

    # ---- derived state ---------------------------------------------------------------------
    def budget_spent(self) -> float:
        """Compute-seconds of every finished segment (interrupted ones are reported apart)."""
        return float(sum(s.cost or 0.0 for s in self.segments.values()
                         if s.status in (SegmentStatus.COMPLETED, SegmentStatus.STOPPED,
                                         SegmentStatus.FAILED)))

    def wall_used(self) -> float:
        return float(self.storage.meta().get("wall_used", "0"))

    def objective_value(self, metrics: Mapping[str, float]) -> float | None:
        v = metrics.get(self.objective)
        if v is None or not math.isfinite(v):
            return None
        return self.sign * float(v)

    def run_record(self, run_id: int) -> RunRecord:
        run = self.runs[run_id]
        segs = sorted((s for s in self.segments.values() if s.run_id == run_id),
                      key=lambda s: s.segment_id)
        done = [s for s in segs if s.status in (SegmentStatus.COMPLETED, SegmentStatus.STOPPED)]
        steps_done = max((s.end_step or 0 for s in done), default=0)
        stopped = next((s.reason for s in done if s.status is SegmentStatus.STOPPED), None)
        failed = bool(segs) and segs[-1].status is SegmentStatus.FAILED
        pending = next((s.target_step for s in segs
                        if s.status in (SegmentStatus.QUEUED, SegmentStatus.RUNNING)), None)
        curve: dict[int, float] = {}
        for ob in self.obs.get(run_id, []):
            v = self.objective_value(ob.metrics)
            if v is not None and ob.step <= max(steps_done, pending or 0):
                curve[ob.step] = v
        finished_curve = {k: v for k, v in curve.items() if k <= steps_done}
        score = finished_curve.get(steps_done) if done else None
        if score is None and done and finished_curve:
            score = finished_curve[max(finished_curve)]
        ck = [st for (rid, st) in self.checkpoints if rid == run_id]
        return RunRecord(
            run_id=run_id, config=MappingProxyType(run.config), model=run.model,
            phase=run.phase, steps_done=steps_done, score=score,
            cost=float(sum(s.cost or 0.0 for s in segs)), stopped=stopped, failed=failed,
            pending_steps=pending, curve=tuple(sorted(curve.items())),
            checkpoint_step=max(ck) if ck else None,
        )

    def unit_cost(self, seg: SegmentRecord) -> float | None:
        """What ``seg`` cost in the budget's unit: compute-seconds, or its wall-clock seconds
        under a wall budget."""
        return seg.wall if self.spec.budget.measure == "wall" else seg.cost

    def n_confirm_runs(self) -> int:
        """How many confirmation runs the study file asks for: top-k plus the recipe, unless the
        search already trained the recipe on the target at the full budget (jfhpo's recipe
        check): then confirmation will skip it, and its share of the reserve goes to the search."""
        k = self.spec.confirm.top_k
        if k == 0:
            return 0
        return k + (1 if self.spec.confirm.include_recipe and not self._recipe_trained() else 0)

    def _recipe_trained(self) -> bool:
        recipe = self.recipe()
        if recipe is None:
            return False
        key, target, full = self.space.key(recipe), self.ladder.target.name, self.steps.max_steps
        return any(run.phase is Phase.SEARCH and self.space.key(run.config) == key
                   and self.run_record(rid).finished_at(target, full)
                   for rid, run in self.runs.items())

    def view(self, workers: int = 1, wall_used: float | None = None,
             resumable: bool = True) -> StudyView:
        """The frozen view decisions are made from, with THE cost model (fitted on the finished
        segments, in the budget's unit) and the budget ledger's figures. ``wall_used``: the
        live wall clock of a running tuner (default: the stored one). ``resumable``: False when
        the backend cannot resume runs (the study's ``checkpoints.reuse`` is read here too)."""
        from jfhpo.cost import CostModel, segment_costs
        from jfhpo.planning.ledger import confirm_reserve, make_ledger

        runs = tuple(self.run_record(rid) for rid in sorted(self.runs))
        ordered = sorted(self.segments.values(), key=lambda s: s.segment_id)
        costs = segment_costs(
            (self.runs[s.run_id].model, s.start_step, s.end_step, self.unit_cost(s))
            for s in ordered if s.status in (SegmentStatus.COMPLETED, SegmentStatus.STOPPED))
        cost = CostModel(self.ladder, costs,
                         resumable=resumable and self.spec.checkpoints.reuse)
        budget = self.spec.budget
        reserve = confirm_reserve(budget.seconds, self.spec.confirm.fraction, self.n_confirm_runs(),
                                  cost, self.ladder.target.name, self.steps.max_steps,
                                  budget.measure, workers)
        ledger = make_ledger(
            budget=budget.seconds, measure=budget.measure, phase=self.phase, reserve=reserve,
            segments=((s.status, self.unit_cost(s)) for s in ordered),
            in_flight=((self.runs[s.run_id].model, s.start_step, s.target_step) for s in ordered
                       if s.status in (SegmentStatus.QUEUED, SegmentStatus.RUNNING)),
            cost=cost, wall_used=self.wall_used() if wall_used is None else wall_used)
        return StudyView(
            space=self.space, ladder=self.ladder, steps=self.steps, seed=self.spec.seed,
            objective=self.objective, runs=runs, observations=self.obs,  # copied, frozen
            budget_total=ledger.total, budget_spent=ledger.spent,
            budget_committed=ledger.committed, measure=budget.measure,
            n_suggestions=len(self.suggestions), workers=workers, phase=self.phase,
            transfer=self.transfer, segment_costs=costs, cost=cost, recipe=self.recipe(),
        )

    def best(self) -> dict[str, Any] | None:
        """The study's answer: the best confirmed run on the target at the full budget if any,
        else the best run at the largest fidelity reached (with how it was reached); runs of
        equal fidelity are ranked by the mean of their last evaluations (``end_score``)."""
        records = [self.run_record(rid) for rid in sorted(self.runs)]
        scored = [r for r in records if r.score is not None]
        if not scored:
            return None
        target, full = self.ladder.target.name, self.steps.max_steps
        confirmed = [r for r in scored if r.phase is Phase.CONFIRM]
        # never worse than a full-budget target score the study already has: the search's own
        # target runs at the full budget compete with the confirmation runs
        at_full = [r for r in scored if r.phase is Phase.SEARCH and r.model == target
                   and r.steps_done >= full]
        pool = confirmed + at_full if confirmed else scored
        best = max(pool, key=self._answer_key)
        fallback = self._sound_answer(best, scored)
        if fallback is not None:
            best = fallback
            how = (f"the best full-budget target run diverged; the best run at the largest "
                   f"fidelity reached of a configuration that did not ({best.model}, "
                   f"{best.steps_done} steps)")
        elif confirmed and best.phase is Phase.SEARCH:
            how = (f"a search run on the target {best.model} at the full budget "
                   f"({best.steps_done} steps) beat the {len(confirmed)} confirmation run(s)")
        elif confirmed:
            how = (f"confirmed on the target {best.model} at {best.steps_done} steps "
                   f"(best of {len(confirmed)} confirmation run(s))")
        else:
            how = (f"best search run at the largest fidelity reached ({best.model}, "
                   f"{best.steps_done} steps); no confirmation on the target was run")
        assert best.score is not None
        lucky = max(pool, key=lambda r: self._answer_key(r, final=True))
        if fallback is None and lucky.run_id != best.run_id and lucky.score is not None:
            end = self.sign * (best.end_score() or 0.0)
            how += (f"; ranked by the mean of the last evaluations ({end:.4g}), run "
                    f"{lucky.run_id} had the highest final score ({self.sign * lucky.score:.4g})")
        recipe_score = None
        recipe = self.recipe()
        if recipe is not None:
            # the recipe's full-budget target run: a confirmation run, or a search run (jfhpo
            # trains the recipe there beside its first verification; confirmation then skips it)
            key = self.space.key(recipe)
            scores = [r.score for r in (*confirmed, *at_full)
                      if r.score is not None and self.space.key(r.config) == key]
            if scores:
                recipe_score = self.sign * max(scores)
        return {
            "recipe_score": recipe_score,
            "config": dict(best.config), "score": self.sign * best.score,
            "end_score": self.sign * (best.end_score() or 0.0),
            "objective": self.objective, "model": best.model, "steps": best.steps_done,
            "run_id": best.run_id, "how": how,
            "target": self.ladder.target.name, "stopped": best.stopped is not None,
            "effective_config": self.effective_config(best.run_id),
        }

    def _sound_answer(self, pick: RunRecord, scored: Sequence[RunRecord]) -> RunRecord | None:
        """The answer instead of ``pick`` when ``pick``'s configuration diverged on the target
        at the full budget (a run of it there collapsed: rose, then lost most of it), else None:
        the best run at the largest fidelity reached among those of configurations that did not
        diverge there, and, when the space has a learning rate, below the smallest one that
        diverged (divergence grows with the learning rate). Why: at a budget of a few target
        runs the only confirmation can be a learning rate that led at 30 steps and diverged at
        60, and the runs left at 10 steps that led did so by rising fastest."""
        from jfhpo.space import learning_rate_param

        target, full = self.ladder.target.name, self.steps.max_steps

        def of(r: RunRecord) -> str:
            return repr(sorted(r.config.items()))

        diverged = {of(r): r for r in scored
                    if r.model == target and r.steps_done >= full and r.rose_and_collapsed()}
        if of(pick) not in diverged:
            return None
        sound = [r for r in scored if of(r) not in diverged]
        lr = learning_rate_param(self.space)
        if lr is not None and all(lr.name in r.config for r in diverged.values()):
            ceiling = min(float(r.config[lr.name]) for r in diverged.values())
            below = [r for r in sound if float(r.config.get(lr.name, ceiling)) < ceiling]
            sound = below or sound
        if not sound:
            return None
        return max(sound, key=self._answer_key)

    def _answer_key(self, r: RunRecord, final: bool = False) -> tuple[int, int, float]:
        """How ``best`` ranks runs: the largest model, then the most steps, then the mean of the
        run's last evaluations (``RunRecord.end_score``: the highest of several noisy final
        scores is a lucky draw more often than the better configuration); ``final``: by the
        final score instead (what ``how`` compares the answer with)."""
        last = r.score if final else r.end_score()
        return (self.ladder.index(r.model), r.steps_done, last or 0.0)

    def effective_config(self, run_id: int) -> dict[str, Any]:
        """The configuration ``run_id`` was trained with, as the backend takes it: stored with
        the run; for runs of older studies, rebuilt from the backend (recipe, fixed, searched)."""
        run = self.runs[run_id]
        if run.effective_config is not None:
            return dict(run.effective_config)
        merged = {**self.spec.fixed, **run.config}
        try:
            from jfhpo.backends.base import get_backend

            backend = get_backend(self.spec.backend.name)(self.spec.backend.options)
            return dict(backend.effective_config(merged))
        except Exception:  # an unloadable backend: what the study itself knows
            return merged

    def close(self) -> None:
        self.storage.close()

    def touch_wall(self, seconds: float) -> None:
        self.storage.set_meta("wall_used", repr(seconds))

    @staticmethod
    def now() -> float:
        return time.time()
