"""The ``command`` backend: tune any training command that logs JSONL and saves checkpoints.

A segment is one execution of the study file's command (an argument list) in its own process
group (``command_proc``). The backend

* fills placeholders in the command, its ``resume_args`` and ``env``: ``{start_step}``,
  ``{end_step}``, ``{max_steps}``, ``{checkpoint_dir}`` (the folder the trainer saves into),
  ``{resume_path}`` (the checkpoint to resume, "" for a fresh run), ``{metrics_file}``,
  ``{seed}``, ``{gpus}`` (comma-separated ids), ``{n_gpus}``, ``{run_id}``, ``{segment_id}``,
  ``{model}`` (the rung's name), ``{build[KEY]}`` (the rung's build keys), ``{log_dir}`` and
  ``{python}`` (this Python);
* passes the configuration (the study's fixed and searched keys) as Hydra-style ``key=value``
  overrides, ``--key value`` flags or environment variables, renamed by ``param_names``;
* reads the metrics file while the trainer writes it: VeRL file-logger lines
  ``{"step": N, "data": {...}}`` or flat ``{"step": N, "name": value}`` lines; native names go
  through a metric map (``metric_names.TABLES`` or the study's own) to canonical names and each
  completed step is reported to the engine; a STOP verdict ends the process group;
* ends the trainer when it has logged the segment's end step (it may run to ``max_steps`` so that
  schedules do not depend on where a segment ends) and finds the checkpoint it left in its save
  folder by a pattern such as ``global_step_{step}``. A checkpoint of step k counts once the
  trainer has logged step k (trainers save before they log a step; VeRL does) or has exited by
  itself with code 0;
* saves stdout and stderr of every segment in the study folder (``logs/segment-N/``); a non-zero
  exit fails the segment with the log's tail in the message; ``timeout`` bounds a segment.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from jfhpo.backends import command_proc
from jfhpo.backends.base import (
    Backend,
    BackendError,
    Reporter,
    SegmentOutcome,
    SegmentTask,
    register_backend,
)
from jfhpo.fidelity import ModelLadder
from jfhpo.metric_names import TABLES, to_canonical
from jfhpo.records import Verdict
from jfhpo.space import SearchSpace

try:  # backend contract v2 (engine); a local stand-in keeps this module working without it
    from jfhpo.backends.base import Capabilities  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # pragma: no cover - depends on the engine branch

    @dataclass(frozen=True)
    class Capabilities:  # type: ignore[no-redef,unused-ignore]
        """How often the trainer checkpoints (0: only at the segment end) and if it resumes."""

        checkpoint_every: int = 1
        resumable: bool = True


#: backend options a study may set under ``backend.options``
OPTIONS: dict[str, str] = {
    "command": "the training command as an argument list (required); placeholders allowed",
    "resume_args": "arguments appended only when a segment resumes a checkpoint",
    "params": "how the configuration reaches the trainer: hydra (key=value), flags, env, none",
    "param_names": "mapping of configuration keys to the trainer's keys",
    "env": "extra environment variables (placeholders allowed)",
    "cwd": "working folder of the command (default: the folder jfhpo runs in)",
    "metrics_file": "where the trainer writes JSONL metrics (default {log_dir}/metrics.jsonl)",
    "metrics_format": "verl ({step, data: {...}}, default) or flat ({step, name: value})",
    "metric_map": "verl, trl, none, or a mapping canonical name -> native name",
    "checkpoint_pattern": "folder of a saved step under {checkpoint_dir} (default global_step_{step})",
    "checkpoint_every": "the trainer's save interval in steps (0: it saves at the segment end)",
    "latest_file": "file under {checkpoint_dir} holding the last completely saved step, if any",
    "timeout": "seconds a segment may run before it is ended and failed (default 86400)",
    "grace": "seconds between SIGTERM and SIGKILL (default 10)",
    "exit_wait": "seconds the trainer may take to exit by itself after logging its end step "
                 "(default 10); it is ended at once when it logs a later step",
    "step_lines": "many (default: a step is complete once a later step is logged) or one (the "
                  "trainer writes exactly one line per step, after the step: report at once)",
    "stop": "kill (default: a STOP ends the group at once) or graceful (SIGTERM, then the "
            "trainer's last steps are still read until it exits or the grace ends)",
}
PARAM_STYLES = ("hydra", "flags", "env", "none")
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class CommandOptions:
    """``backend.options`` of a command study, checked once (errors name the option)."""

    command: tuple[str, ...]
    resume_args: tuple[str, ...] = ()
    params: str = "hydra"
    param_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cwd: str | None = None
    metrics_file: str = "{log_dir}/metrics.jsonl"
    metrics_format: str = "verl"
    metric_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    checkpoint_pattern: str = "global_step_{step}"
    checkpoint_every: int = 0
    latest_file: str | None = None
    timeout: float = 86400.0
    grace: float = 10.0
    exit_wait: float = 10.0
    stop: str = "kill"
    step_lines: str = "many"

    @classmethod
    def parse(cls, options: Mapping[str, Any], name: str = "command") -> CommandOptions:
        where = "backend.options"
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise BackendError(f"{where}: unknown key(s) {unknown} for the {name} backend; "
                               f"valid keys: {sorted(OPTIONS)}")

        def strings(key: str, required: bool = False) -> tuple[str, ...]:
            v = options.get(key)
            if v is None and not required:
                return ()
            if not isinstance(v, list) or not v or not all(
                    isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in v):
                raise BackendError(f"{where}.{key}: expected a non-empty list of strings "
                                   f"(an argument list), got {v!r}")
            return tuple(str(a) for a in v)

        def mapping(key: str) -> dict[str, str]:
            v = options.get(key, {})
            if not isinstance(v, Mapping):
                raise BackendError(f"{where}.{key}: expected a mapping, got {v!r}")
            return {str(k): str(x) for k, x in v.items()}

        def number(key: str, default: float, low: float = 0.0) -> float:
            v = options.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < low:
                raise BackendError(f"{where}.{key}: expected a number >= {low}, got {v!r}")
            return float(v)

        params = str(options.get("params", "hydra"))
        if params not in PARAM_STYLES:
            raise BackendError(f"{where}.params: {params!r} is not one of {list(PARAM_STYLES)}")
        fmt = str(options.get("metrics_format", "verl"))
        if fmt not in ("verl", "flat"):
            raise BackendError(f"{where}.metrics_format: {fmt!r} is not one of ['verl', 'flat']")
        raw_map = options.get("metric_map", "verl" if fmt == "verl" else "none")
        if isinstance(raw_map, str):
            if raw_map == "none":
                metric_map: dict[str, str] = {}
            elif raw_map in TABLES:
                metric_map = dict(TABLES[raw_map])
            else:
                raise BackendError(f"{where}.metric_map: unknown table {raw_map!r}; valid: "
                                   f"{sorted(TABLES)}, none, or a mapping canonical -> native")
        else:
            metric_map = mapping("metric_map")
        pattern = str(options.get("checkpoint_pattern", "global_step_{step}"))
        if pattern.count("{step}") != 1 or os.path.isabs(pattern):
            raise BackendError(f"{where}.checkpoint_pattern: {pattern!r} must be a relative path "
                               "with exactly one {step}")
        every = number("checkpoint_every", 0)
        if not float(every).is_integer():
            raise BackendError(f"{where}.checkpoint_every: expected an integer, got {every!r}")
        cwd = options.get("cwd")
        latest = options.get("latest_file")
        step_lines = str(options.get("step_lines", "many"))
        if step_lines not in ("many", "one"):
            raise BackendError(f"{where}.step_lines: {step_lines!r} is not one of ['many', 'one']")
        stop = str(options.get("stop", "kill"))
        if stop not in ("kill", "graceful"):
            raise BackendError(f"{where}.stop: {stop!r} is not one of ['kill', 'graceful']")
        return cls(
            command=strings("command", required=True),
            resume_args=strings("resume_args"),
            params=params,
            param_names=mapping("param_names"),
            env=mapping("env"),
            cwd=None if cwd is None else str(cwd),
            metrics_file=str(options.get("metrics_file", "{log_dir}/metrics.jsonl")),
            metrics_format=fmt,
            metric_map=metric_map,
            checkpoint_pattern=pattern,
            checkpoint_every=int(every),
            latest_file=None if latest is None else str(latest),
            timeout=number("timeout", 86400.0, 1e-3),
            grace=number("grace", 10.0),
            exit_wait=number("exit_wait", 10.0),
            stop=stop,
            step_lines=step_lines,
        )


# ---- helpers (pure) ------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """A configuration value as command-line text: true/false, repr of floats, JSON for lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    if value is None:
        return "null"
    return str(value)


def param_arguments(config: Mapping[str, Any], style: str,
                    names: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """(arguments, environment variables) that carry ``config`` to the trainer."""
    args: list[str] = []
    env: dict[str, str] = {}
    for key in sorted(config):
        native = names.get(key, key)
        text = format_value(config[key])
        if style == "hydra":
            args.append(f"{native}={text}")
        elif style == "flags":
            args += [native if native.startswith("-") else f"--{native}", text]
        elif style == "env":
            env[names.get(key, key.upper())] = text
    return args, env


class _Fields(dict[str, Any]):
    """Placeholder values; an unknown placeholder is an error that names it."""

    def __missing__(self, key: str) -> Any:
        raise BackendError(f"unknown placeholder {{{key}}}; valid: {sorted(self)}")


def fill(template: str, fields: Mapping[str, Any]) -> str:
    try:
        return template.format_map(_Fields(fields))
    except (KeyError, IndexError, ValueError) as exc:
        raise BackendError(f"placeholder in {template!r}: {exc}") from None


def step_regex(pattern: str) -> re.Pattern[str]:
    before, after = pattern.split("{step}")
    return re.compile(re.escape(before) + r"(\d+)" + re.escape(after) + r"$")


def saved_steps(root: str, pattern: str) -> list[int]:
    """Steps whose checkpoint folder (or file) exists under ``root``, ascending."""
    rx = step_regex(pattern)
    found = []
    for path in glob.glob(os.path.join(glob.escape(root), pattern.replace("{step}", "*"))):
        m = rx.search(os.path.relpath(path, root))
        if m:
            found.append(int(m.group(1)))
    return sorted(set(found))


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class MetricsTail:
    """Reads a JSONL metrics file as it grows; yields (step, native dict) per complete line."""

    def __init__(self, path: str, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.offset = 0
        self.partial = b""

    def read(self) -> list[tuple[int, dict[str, Any]]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self.partial + chunk
        *lines, self.partial = data.split(b"\n")
        out: list[tuple[int, dict[str, Any]]] = []
        for raw in lines:
            raw = raw.strip()
            if not raw:
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                continue  # a half-written or foreign line; the trainer's problem, not ours
            if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
                continue
            inner = row.get("data") if self.fmt == "verl" else None
            values = dict(inner) if isinstance(inner, dict) else {
                k: v for k, v in row.items() if k != "step"}
            out.append((int(row["step"]), values))
        return out


def canonical(native: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, float]:
    """Canonical names from the map, plus every other numeric value under its own name (so an
    objective may name a trainer's metric directly)."""
    out = to_canonical(native, table)
    mapped = set(table.values())
    for key, v in native.items():
        if key in mapped or key in out:
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def outcome(end_step: int, cost: float, checkpoint_step: int | None,
            final: Mapping[str, float]) -> SegmentOutcome:
    """A SegmentOutcome; ``checkpoint_step`` is passed when the engine's contract has it, else a
    checkpoint older than the end step is reported as no checkpoint."""
    names = {f.name for f in dataclasses.fields(SegmentOutcome)}
    kw: dict[str, Any] = {"end_step": end_step, "cost": cost, "final_metrics": dict(final)}
    if "checkpoint_step" in names:
        kw["checkpoint"] = checkpoint_step is not None
        kw["checkpoint_step"] = checkpoint_step
    else:
        kw["checkpoint"] = checkpoint_step == end_step
    return SegmentOutcome(**kw)


def log_dir_for(task: SegmentTask) -> str:
    """``<study>/logs/segment-N`` when the checkpoint folder sits in the study's staging area
    (``<study>/checkpoints/staging/segment-N``), else a folder beside the checkpoint folder."""
    ck = Path(task.checkpoint_dir)
    if ck.parent.name == "staging" and ck.parent.parent.name == "checkpoints":
        return str(ck.parent.parent.parent / "logs" / f"segment-{task.segment_id}")
    return str(ck.parent / f"{ck.name}.logs")


# ---- the backend --------------------------------------------------------------------------------
@register_backend
class CommandBackend(Backend):
    """Any training command: argv + JSONL metrics + checkpoint folders (see the module doc)."""

    name: ClassVar[str] = "command"
    metric_names: ClassVar[Mapping[str, str]] = {}
    default_objective: ClassVar[str] = "eval_loss"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.opts = self.parse_options(self.options)

    def parse_options(self, options: Mapping[str, Any]) -> CommandOptions:
        return CommandOptions.parse(options, self.name)

    # ---- contract --------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        resumable = bool(self.opts.resume_args) or any(
            "{resume_path}" in a for a in (*self.opts.command, *self.opts.env.values()))
        return Capabilities(checkpoint_every=self.opts.checkpoint_every, resumable=resumable)

    def validate(self, space: SearchSpace, ladder: ModelLadder) -> None:
        """Every placeholder of the command must be known for every rung (cheap, no process)."""
        for rung in ladder.rungs:
            fields = self.fields_for_check(rung.name, rung.build)
            for a in (*self.opts.command, *self.opts.resume_args, *self.opts.env.values(),
                      self.opts.metrics_file):
                fill(a, fields)

    def fields_for_check(self, model: str, build: Mapping[str, Any]) -> dict[str, Any]:
        return {"start_step": 0, "end_step": 1, "max_steps": 1, "checkpoint_dir": "",
                "resume_path": "", "metrics_file": "", "seed": 0, "gpus": "", "n_gpus": 0,
                "run_id": 0, "segment_id": 0, "model": model, "build": dict(build),
                "log_dir": "", "python": sys.executable}

    def segment_argv(self, task: SegmentTask, fields: Mapping[str, Any],
                     config: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The full argument list and the extra environment of one segment."""
        o = self.opts
        argv = [fill(a, fields) for a in o.command]
        params, env = param_arguments(config, o.params, o.param_names)
        argv += params
        if task.resume_from is not None:
            argv += [fill(a, fields) for a in o.resume_args]
        env.update({k: fill(v, fields) for k, v in o.env.items()})
        return argv, env

    def resume_path(self, task: SegmentTask) -> str:
        if task.resume_from is None:
            return ""
        path = os.path.join(os.path.abspath(task.resume_from),
                            self.opts.checkpoint_pattern.replace("{step}", str(task.start_step)))
        if not os.path.exists(path):
            raise BackendError(f"resume_from {task.resume_from}: no checkpoint of step "
                               f"{task.start_step} ({path} is missing)")
        return path

    def segment_fields(self, task: SegmentTask, log_dir: str) -> dict[str, Any]:
        rung = task.model
        resources = getattr(rung, "resources", None) or {}
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        fields = {
            "start_step": task.start_step, "end_step": task.target_step,
            "max_steps": task.max_steps, "checkpoint_dir": os.path.abspath(task.checkpoint_dir),
            "resume_path": self.resume_path(task), "seed": task.seed, "gpus": gpus,
            "n_gpus": int(resources.get("gpus", len([g for g in gpus.split(",") if g]))),
            "run_id": task.run_id, "segment_id": task.segment_id, "model": rung.name,
            "build": dict(rung.build), "log_dir": log_dir, "python": sys.executable,
        }
        fields["metrics_file"] = os.path.abspath(fill(self.opts.metrics_file, fields))
        return fields

    def run_segment(self, task: SegmentTask, report: Reporter) -> SegmentOutcome:
        if not 0 <= task.start_step < task.target_step <= task.max_steps:
            raise BackendError(f"segment steps must satisfy 0 <= start ({task.start_step}) < "
                               f"target ({task.target_step}) <= max_steps ({task.max_steps})")
        o = self.opts
        log_dir = log_dir_for(task)
        shutil.rmtree(log_dir, ignore_errors=True)  # an interrupted attempt of this segment
        os.makedirs(log_dir)
        os.makedirs(task.checkpoint_dir, exist_ok=True)
        fields = self.segment_fields(task, log_dir)
        metrics_file = fields["metrics_file"]
        if os.path.exists(metrics_file):
            os.remove(metrics_file)
        os.makedirs(os.path.dirname(metrics_file), exist_ok=True)
        argv, extra_env = self.segment_argv(task, fields, task.config)
        with open(os.path.join(log_dir, "command.json"), "w") as f:
            json.dump({"argv": argv, "env": extra_env, "cwd": o.cwd}, f, indent=1)
        env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1"}
        out_path, err_path = os.path.join(log_dir, "stdout.log"), os.path.join(log_dir, "stderr.log")
        status_file = os.path.join(log_dir, "exit_code")
        t0 = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = command_proc.launch(argv, cwd=fill(o.cwd, fields) if o.cwd else None, env=env,
                                       stdout=out, stderr=err, grace=o.grace,
                                       status_file=status_file)
            with open(os.path.join(log_dir, "pgid"), "w") as f:
                f.write(f"{proc.pid}\n")  # the trainer tree's process group (tests check it)
            try:
                watch = _Watch(self, task, report, metrics_file, proc, status_file)
                result = watch.run()
            finally:
                command_proc.stop_group(proc, o.grace)
        cost = time.perf_counter() - t0
        if result.error is not None:
            tail = log_tail(err_path) or log_tail(out_path)
            raise RuntimeError(f"{result.error} (logs: {log_dir})\n--- log tail ---\n{tail}")
        ck = self.pick_checkpoint(task, result)
        # every metric was reported step by step already: no final metrics to add
        return outcome(result.end_step, cost, ck, {})

    def pick_checkpoint(self, task: SegmentTask, result: _Result) -> int | None:
        """The last complete checkpoint in (start, end]; every other saved step is removed.

        Step k is complete when it is at most the last reported step (trainers save a step
        before they log it, and a step is reported once a later one was logged or the trainer
        ended) and, with ``latest_file``, at most the step that file names."""
        o = self.opts
        steps = saved_steps(task.checkpoint_dir, o.checkpoint_pattern)
        limit = result.end_step
        if o.latest_file:
            latest = _read_int(os.path.join(task.checkpoint_dir, o.latest_file))
            if latest is not None:
                limit = min(limit, latest)
        good = [s for s in steps if task.start_step < s <= limit]
        chosen = good[-1] if good else None
        for s in steps:
            if s != chosen:
                path = os.path.join(task.checkpoint_dir,
                                    o.checkpoint_pattern.replace("{step}", str(s)))
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    _unlink(path)
        if o.latest_file and chosen is not None:
            with open(os.path.join(task.checkpoint_dir, o.latest_file), "w") as f:
                f.write(str(chosen))
        return chosen

    @classmethod
    def example_study(cls) -> str:
        from jfhpo.backends.command_example import EXAMPLE_STUDY

        return EXAMPLE_STUDY


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _unlink(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


@dataclass
class _Result:
    end_step: int  # the last step reported to the engine
    error: str | None = None


class _Watch:
    """The loop of one segment: tail metrics, report steps, end the trainer when due."""

    def __init__(self, backend: CommandBackend, task: SegmentTask, report: Reporter,
                 metrics_file: str, proc: Any, status_file: str) -> None:
        self.o = backend.opts
        self.task = task
        self.report = report
        self.tail = MetricsTail(metrics_file, self.o.metrics_format)
        self.proc = proc
        self.status_file = status_file
        self.pending: dict[int, dict[str, float]] = {}
        self.reported = task.start_step
        self.logged = task.start_step
        self.ppid = os.getppid()
        self.overshoot = False  # the trainer logged a step after the segment's end
        self.stopping: float | None = None  # when a graceful stop was asked (SIGTERM sent)

    def _take(self) -> None:
        for step, native in self.tail.read():
            if step > self.task.target_step:
                self.overshoot = True  # it trains on towards max_steps: not this segment's work
                continue
            if step <= self.task.start_step:
                continue  # a resumed trainer may re-log (validate) its start step
            self.logged = max(self.logged, step)
            self.pending.setdefault(step, {}).update(canonical(native, self.o.metric_map))

    def _flush(self, upto: int) -> Verdict:
        """Report every pending step <= ``upto`` in order; STOP as soon as the engine says so
        (after a graceful stop was asked, the trainer's last steps are reported regardless)."""
        for step in sorted(s for s in self.pending if s <= upto):
            metrics = self.pending.pop(step)
            if step <= self.reported:
                continue
            self.reported = step
            if self.report(step, metrics) is Verdict.STOP and self.stopping is None:
                if self.o.stop == "kill":
                    return Verdict.STOP
                self.stopping = time.monotonic()
                command_proc.signal_group(self.proc.pid, signal.SIGTERM)
        return Verdict.CONTINUE

    def run(self) -> _Result:
        o, task = self.o, self.task
        t_end = time.monotonic() + o.timeout
        target_seen: float | None = None
        while True:
            self._take()
            exited = self.proc.poll() is not None
            if not exited and self.pending:
                # a step is complete once a later one appears (lines of one step may be several)
                newest = max(self.pending)
                done = newest if o.step_lines == "one" and newest < task.target_step else newest - 1
                if self._flush(done) is Verdict.STOP:
                    return self._result()
            if self.logged >= task.target_step and target_seen is None:
                target_seen = time.monotonic()
            if exited:
                self._take()
                rc = command_proc.read_status(self.status_file)  # None: the guard was killed
                if self._flush(task.target_step) is Verdict.STOP:
                    return self._result()
                if self.reported >= task.target_step or self.stopping is not None:
                    return self._result()
                if rc == 0:
                    return self._result(error=(
                        f"the trainer exited (code 0) after step {self.reported}, before the "
                        f"segment's end step {task.target_step}: check its step placeholders"))
                how = "was killed" if rc is None else f"exited with code {rc}"
                return self._result(error=(
                    f"the trainer {how} at step {self.reported}, before the segment's end "
                    f"step {task.target_step}"))
            if target_seen is not None and (
                    self.overshoot or time.monotonic() - target_seen >= o.exit_wait):
                self._flush(task.target_step)
                return self._result()
            if self.stopping is not None and time.monotonic() - self.stopping > o.grace:
                return self._result()  # it did not end in time: the caller kills the group
            if time.monotonic() > t_end:
                return self._result(error=f"the segment timed out after {o.timeout:g} s "
                                          f"(last step {self.logged})")
            if os.getppid() != self.ppid:
                return self._result(error="the jfhpo process that started this worker is gone")
            time.sleep(0.1)

    def _result(self, error: str | None = None) -> _Result:
        """The end step is the last reported one, whether the segment ended or was stopped."""
        return _Result(self.reported, error)
