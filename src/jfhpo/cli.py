"""The ``jfhpo`` command line: init | prepare | run | resume | status | best.

``main(argv) -> int`` returns the exit code: 0 success, 1 a failure of the study itself (a
backend that cannot start, a full disk), 2 a user error (bad study file, impossible range,
missing folder), 130 interrupted. Study files are validated completely before a folder is made.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

USER_ERROR = 2


class UserError(Exception):
    """A mistake in what the user asked for; printed without a traceback, exit code 2."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    from jfhpo.backends.base import BackendError
    from jfhpo.executors.base import ExecutorError
    from jfhpo.fidelity import LadderError
    from jfhpo.optimizers.base import OptimizerError
    from jfhpo.space import SpaceError
    from jfhpo.spec import StudyFileError
    from jfhpo.stopping.base import RuleError

    return (UserError, StudyFileError, SpaceError, LadderError, BackendError, OptimizerError,
            RuleError, FileExistsError, ExecutorError)


def _check(spec: Any) -> None:
    """Validate everything the study file names (backend, optimizer, rules) without side effects."""
    from jfhpo.backends.base import get_backend
    from jfhpo.optimizers.base import get_optimizer
    from jfhpo.stopping.factory import build_rules

    backend = get_backend(spec.backend.name)(spec.backend.options)
    backend.validate(spec.search_space(), spec.ladder())
    get_optimizer(spec.optimizer.name)(spec.optimizer.options)
    build_rules(spec.stopping)
    from jfhpo.executors import validate_executor

    validate_executor(spec)


def _load(path: str, overrides: dict[str, Any]) -> Any:
    from jfhpo.spec import load_spec, parse_spec

    spec = load_spec(path)
    from jfhpo.backends.base import add_backend_path

    add_backend_path(Path(path).resolve().parent)  # a `module:Class` backend beside the file
    if overrides:
        data = spec.model_dump(mode="json")
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "budget":
                data["budget"]["seconds"] = value
            else:
                data[key] = value
        spec = parse_spec(data)
    _check(spec)
    return spec


def cmd_init(args: argparse.Namespace) -> int:
    from jfhpo.backends.base import get_backend

    out = Path(args.path)
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to overwrite it")
    text = get_backend(args.workload).example_study()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}: a {args.workload} study; run it with `jfhpo run {out}`")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from jfhpo.backends.base import get_backend
    from jfhpo.tuner import default_cache_dir

    spec = _load(args.study, {})
    backend = get_backend(spec.backend.name)(spec.backend.options)
    backend.setup_worker(spec.threads_per_worker)
    cache = spec.cache_dir or default_cache_dir()
    t0 = time.monotonic()
    backend.prepare(spec.ladder(), cache, lambda m: print(m, flush=True))
    print(f"prepared {len(spec.models)} model(s) in {time.monotonic() - t0:.1f}s under {cache}")
    return 0


def _run(study: Any, args: argparse.Namespace) -> int:
    from jfhpo.progress import make_sink
    from jfhpo.tuner import run_study

    print(f"study folder: {study.folder}", flush=True)
    try:
        best = run_study(study, make_sink(args.quiet), workers=getattr(args, "workers", None))
    except KeyboardInterrupt:
        print(f"\ninterrupted; everything recorded is kept. Continue with: jfhpo resume "
              f"{study.folder}", file=sys.stderr)
        return 130
    finally:
        study.close()
    return 0 if best is not None else 1


def cmd_run(args: argparse.Namespace) -> int:
    from jfhpo.study import Study

    spec = _load(args.study, {"budget": args.budget, "workers": args.workers, "seed": args.seed})
    out = Path(args.out) if args.out else Path("studies") / (
        f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    from jfhpo.backends.base import get_backend

    objective = spec.objective_metric(get_backend(spec.backend.name).default_objective)
    study = Study.create(out, spec, objective)
    study.set_spec_dir(Path(args.study).resolve().parent)
    args.workers = None  # already applied to the spec
    return _run(study, args)


def _open(folder: str) -> Any:
    from jfhpo.storage import StorageError
    from jfhpo.study import Study

    try:
        return Study.open(folder)
    except StorageError as exc:
        raise UserError(str(exc)) from None


def cmd_resume(args: argparse.Namespace) -> int:
    return _run(_open(args.folder), args)


def cmd_status(args: argparse.Namespace) -> int:
    from jfhpo.report.text import status_dict, status_text

    study = _open(args.folder)
    try:
        if args.json:
            print(json.dumps(status_dict(study), indent=2, default=str))
        else:
            print(status_text(study))
    finally:
        study.close()
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    study = _open(args.folder)
    try:
        best = study.best()
    finally:
        study.close()
    if best is None:
        print("no run has a score yet", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(best, indent=2))
    else:
        print(f"{best['objective']} = {best['score']:.4f} on {best['model']} at {best['steps']} "
              f"steps (run {best['run_id']})")
        print(f"how: {best['how']}")
        for k, v in best["config"].items():
            print(f"  {k}: {v}")
        extra = {k: v for k, v in best.get("effective_config", {}).items()
                 if k not in best["config"]}
        if extra:
            print("as the trainer takes it, with the backend's defaults and the fixed keys:")
            for k, v in sorted(extra.items()):
                print(f"  {k}: {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jfhpo", description=(
        "Joint-fidelity hyperparameter optimization for LLM reinforcement learning."))
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="write a commented example study file")
    s.add_argument("path")
    s.add_argument("--workload", default="tiny", help="backend to write the example for "
                   "(synthetic, tiny)")
    s.add_argument("--force", action="store_true")
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("prepare", help="make the backend's base models ahead of time")
    s.add_argument("study")
    s.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("run", help="run a study file")
    s.add_argument("study")
    s.add_argument("--budget", type=float, help="budget in seconds (overrides the file)")
    s.add_argument("--workers", type=int, help="parallel workers (overrides the file)")
    s.add_argument("--seed", type=int, help="seed (overrides the file)")
    s.add_argument("--out", help="study folder (default studies/<name>-<time>)")
    s.add_argument("--quiet", action="store_true", help="no progress view")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("resume", help="continue a study after a crash or an interrupt")
    s.add_argument("folder")
    s.add_argument("--workers", type=int)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=cmd_resume)

    s = sub.add_parser("status", help="show a study's state")
    s.add_argument("folder")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser("best", help="the best configuration found")
    s.add_argument("folder")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_best)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except _user_error_types() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from jfhpo.storage import StorageError
        from jfhpo.tuner import PrepareError, StudyAborted

        if isinstance(exc, (StorageError, PrepareError, StudyAborted)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def entry() -> None:
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        sys.exit(0)
