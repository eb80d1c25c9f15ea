"""The ``jfhpo`` command line: init | prepare | run | resume | status | best | report | export.

``main(argv) -> int`` returns the exit code: 0 success, 1 a failure of the study itself (a
backend that cannot start, a full disk), 2 a user error (bad study file, impossible range,
missing folder, a study another process is writing), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM). Study files are validated completely before a folder is made. ``run`` and ``resume``
hold the study's lock (``jfhpo.lock``) for as long as they live; ``status`` and ``best`` only read.
"""

from __future__ import annotations

import argparse
import json
import signal
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
    from jfhpo.lock import StudyLocked
    from jfhpo.optimizers.base import OptimizerError
    from jfhpo.paths import OutFolderError
    from jfhpo.space import SpaceError
    from jfhpo.spec import StudyFileError
    from jfhpo.stopping.base import RuleError

    return (UserError, StudyFileError, SpaceError, LadderError, BackendError, OptimizerError,
            RuleError, FileExistsError, ExecutorError, StudyLocked, OutFolderError)


def _check(spec: Any) -> None:
    """Validate everything the study file names (backend, optimizer, rules) without side effects."""
    from jfhpo.backends.base import get_backend
    from jfhpo.optimizers.base import get_optimizer
    from jfhpo.spec import check_against_backend
    from jfhpo.stopping.factory import build_rules

    backend = get_backend(spec.backend.name)(spec.backend.options)
    backend.validate(spec.search_space(), spec.ladder())
    check_against_backend(spec, backend)
    get_optimizer(spec.optimizer.name)(spec.optimizer.options)
    build_rules(spec.stopping)
    from jfhpo.executors import validate_executor

    validate_executor(spec)
    _check_cache(spec)


def _check_cache(spec: Any) -> None:
    """The base-model cache must be a folder (or not exist yet): name where it came from."""
    import os

    where, cache = ("cache_dir", spec.cache_dir) if spec.cache_dir else (
        "the environment variable JFHPO_CACHE", os.environ.get("JFHPO_CACHE"))
    if cache and os.path.exists(cache) and not os.path.isdir(cache):
        raise UserError(f"{where} = {cache!r:.200} is a file; it must name a folder for cached "
                        "base models")


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
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        best = run_study(study, make_sink(args.quiet), workers=getattr(args, "workers", None))
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one message, even if signalled again
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"\n{what}; everything recorded is kept. Continue with: jfhpo resume "
              f"{study.folder}", file=sys.stderr, flush=True)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        study.close()
    return 0 if best is not None else 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main process so the study stops like on Ctrl-C (exit 143)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def cmd_run(args: argparse.Namespace) -> int:
    from jfhpo.lock import LOCK_NAME, StudyLock
    from jfhpo.paths import check_out_folder, default_folder
    from jfhpo.study import DB_NAME, Study

    spec = _load(args.study, {"budget": args.budget, "workers": args.workers, "seed": args.seed})
    out = Path(args.out) if args.out else default_folder(spec.name, time.strftime('%Y%m%d-%H%M%S'))
    from jfhpo.backends.base import get_backend

    objective = spec.objective_metric(get_backend(spec.backend.name).default_objective)
    check_out_folder(out, DB_NAME, LOCK_NAME)
    out.mkdir(parents=True, exist_ok=True)
    args.lock = StudyLock(out).acquire()  # held until this process ends
    check_out_folder(out, DB_NAME, LOCK_NAME)  # again, now that no one else can write here
    study = Study.create(out, spec, objective)
    study.set_spec_dir(Path(args.study).resolve().parent)
    args.workers = None  # already applied to the spec
    return _run(study, args)


def _open(folder: str, readonly: bool = True) -> Any:
    from jfhpo.storage import StorageError
    from jfhpo.study import DB_NAME, Study

    if not (Path(folder) / DB_NAME).is_file():
        raise UserError(f"{folder} is not a study folder (no {DB_NAME})")
    try:
        return Study.open(folder, readonly=readonly)
    except StorageError as exc:
        raise UserError(str(exc)) from None


def cmd_resume(args: argparse.Namespace) -> int:
    from jfhpo.lock import StudyLock
    from jfhpo.study import DB_NAME

    if not (Path(args.folder) / DB_NAME).is_file():
        raise UserError(f"{args.folder} is not a study folder (no {DB_NAME})")
    args.lock = StudyLock(args.folder).acquire()  # held until this process ends
    return _run(_open(args.folder, readonly=False), args)


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


def cmd_report(args: argparse.Namespace) -> int:
    from jfhpo.report.html import write_report
    from jfhpo.storage import StorageError

    try:
        path = write_report(args.folder, args.out)
    except StorageError as exc:
        raise UserError(str(exc)) from None
    print(f"report written to {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from jfhpo.export import ExportError, ExportUnavailable, export_text, optuna_journal
    from jfhpo.results import study_results

    study = _open(args.folder)
    try:
        if args.format == "optuna":
            out = Path(args.out) if args.out else Path(args.folder) / "optuna-journal.log"
            path = optuna_journal(study, study_results(study), out)
            print(f"wrote {path}: {len(study.runs)} trial(s); open it with "
                  f"`optuna-dashboard {path}` or optuna.load_study(study_name="
                  f"{study.spec.name!r}, storage=JournalStorage(JournalFileBackend({str(path)!r})))")
            return 0
        text = export_text(study, args.format, extra=args.extra or ())
    except ExportError as exc:
        raise UserError(str(exc)) from None
    except ExportUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        study.close()
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _workers(text: str) -> int:
    """--workers: an integer in [1, MAX_WORKERS], the same bound as the study file's."""
    from jfhpo.spec import MAX_WORKERS

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r:.60}") from None
    if not 1 <= n <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WORKERS}, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jfhpo", description=(
        "Joint-fidelity hyperparameter optimization for LLM reinforcement learning."))
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="write a commented example study file")
    s.add_argument("path")
    s.add_argument("--workload", default="tiny", help="backend to write the example for "
                   "(synthetic, tiny, trl, command, verl)")
    s.add_argument("--force", action="store_true")
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("prepare", help="make the backend's base models ahead of time")
    s.add_argument("study")
    s.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("run", help="run a study file")
    s.add_argument("study")
    s.add_argument("--budget", type=float, help="budget in seconds (overrides the file)")
    s.add_argument("--workers", type=_workers, help="parallel workers (overrides the file)")
    s.add_argument("--seed", type=int, help="seed (overrides the file)")
    s.add_argument("--out", help="study folder (default studies/<name>-<time>)")
    s.add_argument("--quiet", action="store_true", help="no progress view")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("resume", help="continue a study after a crash or an interrupt")
    s.add_argument("folder")
    s.add_argument("--workers", type=_workers)
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

    s = sub.add_parser("report", help="write a self-contained HTML report (works offline; "
                       "safe while the study runs)")
    s.add_argument("folder")
    s.add_argument("--out", help="HTML file to write (default FOLDER/report.html)")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("export", help="the winner as a trainer takes it, or the trials for Optuna")
    s.add_argument("folder")
    s.add_argument("--format", required=True, choices=["verl", "trl", "yaml", "json", "optuna"])
    s.add_argument("--out", help="file to write (default: stdout; optuna: "
                   "FOLDER/optuna-journal.log)")
    s.add_argument("--extra", action="append", metavar="KEY=VALUE",
                   help="verl: an extra Hydra override appended to the command (repeatable)")
    s.set_defaults(fn=cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except _user_error_types() as exc:
        print(f"error: {_short(str(exc))}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt as exc:
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:
        import sqlite3

        from jfhpo.storage import StorageError
        from jfhpo.tuner import PrepareError, StudyAborted

        if isinstance(exc, (StorageError, PrepareError, StudyAborted, sqlite3.Error)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError):  # a folder that cannot be made or written, a full disk
            print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
            return 1
        raise


def _short(text: str, line_limit: int = 600, total: int = 6000) -> str:
    """An error message with over-long lines cut in the middle (a pasted value can be huge;
    the start names the key, the end often lists the valid choices)."""
    head, tail = line_limit // 2, line_limit // 4
    lines = [ln if len(ln) <= line_limit else
             f"{ln[:head]} ...[{len(ln) - head - tail} chars cut]... {ln[-tail:]}"
             for ln in text.splitlines()]
    out = "\n".join(lines)
    return out if len(out) <= total else out[:total] + " ..."


def entry() -> None:
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        sys.exit(0)
