"""``jfhpo export``: the study's winner in the form each trainer takes, and its trials for Optuna.

Formats:

* ``yaml`` / ``json``: the winner's effective configuration (recipe, then ``fixed``, then the
  searched keys) with the fidelity it was trained at;
* ``verl``: a runnable ``python3 -m verl.trainer.main_ppo key=value ...`` command line for a full
  training run, built by ``jfhpo.backends.verl.verl_command`` (the VeRL preset owns the mapping of
  our names onto VeRL's Hydra keys);
* ``trl``: a YAML file that ``trl grpo --config FILE`` loads: ``GRPOConfig`` fields (and
  ``model_name_or_path`` when the target rung names one);
* ``optuna``: every run as a trial in an Optuna journal file (``JournalFileBackend``), with its
  learning curve as intermediate values, which optuna and optuna-dashboard open.

All formats read the typed results layer, so they export the same winner that ``jfhpo status``
and the HTML report show.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from jfhpo.results import StudyResults, Winner, study_results
from jfhpo.study import Study

__all__ = ["FORMATS", "ExportError", "export_text", "optuna_journal", "trl_config",
           "verl_argv"]

FORMATS = ("verl", "trl", "yaml", "json", "optuna")


class ExportError(ValueError):
    """The study cannot be exported in the format asked for (no winner yet, unknown format)."""


class ExportUnavailable(RuntimeError):
    """A format needs a part of jfhpo or a package that is not installed here."""


def _winner(res: StudyResults) -> Winner:
    if res.winner is None:
        raise ExportError(f"{res.folder}: no run has a score yet, so there is no winner to export")
    return res.winner


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in config.items()}


def effective_document(res: StudyResults) -> dict[str, Any]:
    """The yaml/json export: the effective configuration and where it comes from."""
    w = _winner(res)
    return {
        "study": res.name, "objective": res.objective, "mode": res.mode, "score": w.score,
        "model": w.model, "steps": w.steps, "run_id": w.run_id, "how": w.how,
        "backend": res.backend, "searched": _plain(w.config), "fixed": _plain(res.fixed),
        "effective_config": _plain(w.effective_config),
    }


def _target_gpus(study: Study) -> int:
    """GPUs the target rung asks for (``resources: {gpus: N}`` or ``build: {n_gpus: N}``)."""
    rung = study.ladder.target
    resources = getattr(rung, "resources", None) or {}
    for source, key in ((resources, "gpus"), (rung.build, "n_gpus_per_node"),
                        (rung.build, "n_gpus"), (rung.build, "gpus")):
        if key in source:
            try:
                return max(int(source[key]), 1)
            except (TypeError, ValueError):
                continue
    return 1


def verl_argv(study: Study, res: StudyResults,
              extra: Sequence[str] = ()) -> tuple[list[str], dict[str, Any]]:
    """The VeRL command (argv) that trains the winner on the full step budget, and the keys of
    the effective configuration that have no VeRL key (left out, so the command runs)."""
    w = _winner(res)
    try:
        from jfhpo.backends import verl  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise ExportUnavailable(
            "the VeRL preset (jfhpo.backends.verl) is not installed in this jfhpo; "
            "export --format yaml gives the configuration to map by hand") from exc
    config = _plain(w.effective_config)
    known = getattr(verl, "VERL_KEYS", None)
    dropped: dict[str, Any] = {}
    if known is not None:
        for key in list(config):
            if key not in known and "." not in key:
                dropped[key] = config.pop(key)
    nnodes = int(study.ladder.target.build.get("nnodes", 1) or 1)
    argv: list[str] = verl.verl_command(config, total_steps=res.max_steps,
                                        n_gpus_per_node=_target_gpus(study), nnodes=nnodes,
                                        extra=tuple(extra))
    return list(argv), dropped


def _shell(argv: Sequence[str]) -> str:
    """One argument per line, continued with backslashes: readable and pasteable."""
    if len(argv) <= 3:
        return shlex.join(argv)
    head = shlex.join(argv[:3])
    return " \\\n    ".join([head, *(shlex.quote(a) for a in argv[3:])])


#: our names (the tiny/TRL workloads') that GRPOConfig spells differently
_TRL_RENAMES: Mapping[str, str] = {"kl_coef": "beta", "rollout_n": "num_generations"}


def trl_config(study: Study, res: StudyResults) -> tuple[dict[str, Any], list[str]]:
    """GRPOConfig fields for the winner (plus ``model_name_or_path`` when the target rung names
    one) and notes for the keys that have no GRPOConfig field."""
    try:
        from trl import GRPOConfig, ModelConfig
    except ImportError as exc:
        raise ExportUnavailable("export --format trl needs TRL: pip install trl") from exc
    w = _winner(res)
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    out: dict[str, Any] = {}
    notes: list[str] = []
    eff = _plain(w.effective_config)
    for key, value in eff.items():
        name = _TRL_RENAMES.get(key, key)
        if key == "prompts_per_step":
            continue  # folded into the batch size below
        if key == "max_completion_length" and not value:
            notes.append("max_completion_length 0 (the task's own length) left to TRL's default")
            continue
        if name in fields or name in model_fields:
            out[name] = value
        else:
            notes.append(f"{key}={value!r} has no GRPOConfig field; left out")
    if "prompts_per_step" in eff and "per_device_train_batch_size" not in out:
        gens = int(out.get("num_generations", eff.get("num_generations", 8)))
        out["per_device_train_batch_size"] = int(eff["prompts_per_step"]) * gens
        out.setdefault("gradient_accumulation_steps", 1)
        notes.append(f"prompts_per_step={eff['prompts_per_step']} x num_generations={gens} "
                     "completions per step on one process: per_device_train_batch_size")
    if "per_device_train_batch_size" not in out and "num_generations" in out:
        # TRL needs the completions per step to be a multiple of the group size
        out["per_device_train_batch_size"] = int(out["num_generations"])
        notes.append("per_device_train_batch_size = num_generations (one prompt's group per "
                     "device and step); raise it, keeping it a multiple, for your hardware")
    out["max_steps"] = res.max_steps
    out.setdefault("output_dir", f"{res.name}-winner")
    build = study.ladder.target.build
    for key in ("model_name_or_path", "model", "path"):
        if isinstance(build.get(key), str) and "model_name_or_path" not in out:
            out["model_name_or_path"] = build[key]
    if "model_name_or_path" not in out:
        notes.append("set model_name_or_path and dataset_name (or datasets:) for your run")
    return out, notes


def trl_text(study: Study, res: StudyResults) -> str:
    config, notes = trl_config(study, res)
    w = _winner(res)
    head = [f"# jfhpo winner of study {res.name}: {res.objective}={w.score:.4g} on {w.model} "
            f"at {w.steps} steps (run {w.run_id})",
            "# train it with: trl grpo --config THIS_FILE"]
    head += [f"# note: {n}" for n in notes]
    return "\n".join(head) + "\n" + yaml.safe_dump(config, sort_keys=False)


def optuna_journal(study: Study, res: StudyResults, path: str | Path) -> Path:
    """Write every run as a trial of one Optuna study in the journal file ``path`` (replaced if
    it exists), with the learning curve as intermediate values. Returns the path."""
    from jfhpo.report.optuna_bridge import _optuna, trials

    optuna = _optuna()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    ostudy = optuna.create_study(storage=storage, study_name=res.name,
                                 direction="maximize" if res.mode == "max" else "minimize")
    ostudy.set_user_attr("jfhpo_folder", res.folder)
    ostudy.set_user_attr("objective", res.objective)
    ostudy.set_user_attr("models", list(res.models))
    if res.winner is not None:
        ostudy.set_user_attr("winner_run_id", res.winner.run_id)
        ostudy.set_user_attr("winner_effective_config", _plain(res.winner.effective_config))
    ostudy.add_trials(list(trials(res, study.space)))
    return path


def export_text(study: Study, fmt: str, *, extra: Sequence[str] = ()) -> str:
    """The export of ``study`` in ``fmt`` (not ``optuna``, which writes a file) as text."""
    res = study_results(study)
    if fmt == "json":
        return json.dumps(effective_document(res), indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(effective_document(res), sort_keys=False)
    if fmt == "verl":
        argv, dropped = verl_argv(study, res, extra)
        w = _winner(res)
        head = [f"# jfhpo winner of study {res.name}: {res.objective}={w.score:.4g} on {w.model} "
                f"at {w.steps} steps (run {w.run_id}); a full run of {res.max_steps} steps"]
        head += [f"# left out (no VeRL key): {k}={v!r}" for k, v in dropped.items()]
        if not any(a.startswith("actor_rollout_ref.model.path=") for a in extra):
            head.append("# add your model and data: --extra actor_rollout_ref.model.path=... "
                        "--extra data.train_files=... --extra data.val_files=...")
        return "\n".join(head) + "\n" + _shell(argv) + "\n"
    if fmt == "trl":
        return trl_text(study, res)
    raise ExportError(f"--format: unknown format '{fmt}'; valid formats: {list(FORMATS)}")
