"""Append-mostly SQLite persistence of every study event (WAL mode, one file per study).

Every event is committed the moment it happens: run started, observation at a step, segment
finished or stopped (with the reason), checkpoint committed or released, failure with its
traceback. The study's state is rebuilt from these rows (``study.Study``); nothing is pickled.
Disk-full and other I/O errors surface as ``StorageError`` naming the file and the cause.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS suggestions (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, run_id INTEGER, config TEXT, model TEXT,
    steps INTEGER NOT NULL, phase TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, suggestion_id INTEGER NOT NULL, config TEXT NOT NULL,
    model TEXT NOT NULL, phase TEXT NOT NULL, seed INTEGER NOT NULL, created REAL NOT NULL,
    effective_config TEXT);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, suggestion_id INTEGER NOT NULL,
    start_step INTEGER NOT NULL, target_step INTEGER NOT NULL, status INTEGER NOT NULL,
    end_step INTEGER, score REAL, cost REAL, wall REAL, reason_rule TEXT, reason_msg TEXT,
    error TEXT, worker INTEGER, started REAL, finished REAL);
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY, segment_id INTEGER NOT NULL, run_id INTEGER NOT NULL,
    step INTEGER NOT NULL, metrics TEXT NOT NULL, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS obs_run ON observations (run_id, step);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER NOT NULL, step INTEGER NOT NULL, path TEXT NOT NULL, bytes INTEGER NOT NULL,
    committed REAL NOT NULL, released REAL, PRIMARY KEY (run_id, step));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL);
"""


class StorageError(RuntimeError):
    """The study database cannot be read or written (disk full, locked, corrupt)."""


def _dumps(obj: Any) -> str:
    # NaN and infinities are kept (as JSON's NaN/Infinity extensions): guards must see them.
    return json.dumps(obj, sort_keys=True, allow_nan=True)


def _clean(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_header(path: Path) -> None:
    """Refuse (never touch) a file that is not an SQLite database: opening an empty file would
    silently turn it into a new, empty study."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise StorageError(f"{path} is empty: not a study database (left as it is)")
    if head != _SQLITE_MAGIC:
        raise StorageError(f"{path} is not an SQLite database (corrupt or overwritten); "
                           "left as it is")


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that never writes the file or its folder. ``mode=ro`` reads a
    study another process is writing (WAL); on a read-only folder, where SQLite cannot make the
    WAL index, it falls back to ``immutable=1`` (nothing can write there either)."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}"
    last: sqlite3.Error | None = None
    for mode in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(uri + mode, uri=True, isolation_level=None, timeout=30.0)
            conn.execute("SELECT count(*) FROM meta").fetchone()
            return conn
        except sqlite3.Error as exc:
            last = exc
    raise StorageError(f"cannot read study database {path}: {last}")


class Storage:
    """One SQLite file. All writes go through ``_write`` so errors read the same everywhere."""

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StorageError(f"no study database at {self.path}")
        if not create:
            _check_header(self.path)
        if readonly:
            self.conn = _open_readonly(self.path)
            return
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            self._migrate()
            if create:
                self.set_meta("schema_version", str(SCHEMA_VERSION))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open study database {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        """Bring a database written by an older jfhpo up to date (columns added since): the
        runs' effective configuration. A read-only file is left as it is (readers cope)."""
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        if "effective_config" not in cols:
            try:
                self.conn.execute("ALTER TABLE runs ADD COLUMN effective_config TEXT")
            except sqlite3.OperationalError:
                pass

    def close(self) -> None:
        self.conn.close()

    # ---- writing ---------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            msg = str(exc)
            if "full" in msg:
                raise StorageError(
                    f"the disk holding {self.path} is full ({msg}); free space and run "
                    f"`jfhpo resume {self.path.parent}` (everything recorded so far is kept)"
                ) from exc
            raise StorageError(f"writing {self.path} failed: {msg}") from exc
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite already rolled back (it does so itself on SQLITE_FULL)

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def add_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO events (t, kind, payload) VALUES (?, ?, ?)",
                (time.time(), kind, _dumps(dict(payload))),
            )

    def add_suggestion(
        self, kind: str, steps: int, phase: str, *, run_id: int | None = None,
        config: Mapping[str, Any] | None = None, model: str | None = None,
    ) -> int:
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO suggestions (kind, run_id, config, model, steps, phase, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, run_id, None if config is None else _dumps(dict(config)), model, steps,
                 phase, time.time()),
            )
            return int(cur.lastrowid or 0)

    def add_run(
        self, suggestion_id: int, config: Mapping[str, Any], model: str, phase: str, seed: int,
        effective_config: Mapping[str, Any] | None = None,
    ) -> int:
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO runs (suggestion_id, config, model, phase, seed, created, "
                "effective_config) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (suggestion_id, _dumps(dict(config)), model, phase, seed, time.time(),
                 None if effective_config is None else _dumps(dict(effective_config))),
            )
            return int(cur.lastrowid or 0)

    def add_segment(self, run_id: int, suggestion_id: int, start: int, target: int, status: int) -> int:
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO segments (run_id, suggestion_id, start_step, target_step, status) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, suggestion_id, start, target, status),
            )
            return int(cur.lastrowid or 0)

    def update_segment(self, segment_id: int, **fields: Any) -> None:
        allowed = {"status", "end_step", "score", "cost", "wall", "reason_rule", "reason_msg",
                   "error", "worker", "started", "finished"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown segment fields {bad}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        values = [None if isinstance(v, float) and not math.isfinite(v) else v
                  for v in fields.values()]
        with self._write() as c:
            c.execute(f"UPDATE segments SET {cols} WHERE id = ?", (*values, segment_id))

    def add_observation(self, segment_id: int, run_id: int, step: int,
                        metrics: Mapping[str, Any]) -> dict[str, float]:
        clean = _clean(metrics)
        with self._write() as c:
            c.execute(
                "INSERT INTO observations (segment_id, run_id, step, metrics, t) "
                "VALUES (?, ?, ?, ?, ?)",
                (segment_id, run_id, step, _dumps(clean), time.time()),
            )
        return clean

    def add_checkpoint(self, run_id: int, step: int, path: str, nbytes: int) -> None:
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, step, path, bytes, committed, "
                "released) VALUES (?, ?, ?, ?, ?, NULL)",
                (run_id, step, path, nbytes, time.time()),
            )

    def release_checkpoint(self, run_id: int, step: int) -> None:
        with self._write() as c:
            c.execute(
                "UPDATE checkpoints SET released = ? WHERE run_id = ? AND step = ?",
                (time.time(), run_id, step),
            )

    # ---- reading ---------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the file (one read transaction): a reader that loads
        table after table never sees a segment whose run a writer added after it read the runs."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def rows(self, table: str, order: str = "id") -> list[sqlite3.Row]:
        if table not in {"suggestions", "runs", "segments", "observations", "checkpoints", "events"}:
            raise ValueError(table)
        self.conn.row_factory = sqlite3.Row
        try:
            return list(self.conn.execute(f"SELECT * FROM {table} ORDER BY {order}"))
        finally:
            self.conn.row_factory = None

    @staticmethod
    def loads(text: str | None) -> Any:
        return None if text is None else json.loads(text)
