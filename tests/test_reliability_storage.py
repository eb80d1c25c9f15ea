"""#15 finding 7, storage side: an empty or damaged study.sqlite and a read-only study folder give
a message and exit code 1 or 2, never a traceback; an empty file is never rewritten; ``status``
and ``best`` only read, so they work on a read-only folder."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import cli, synthetic_study, write_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished synthetic study (a few seconds)."""
    root = tmp_path_factory.mktemp("finished")
    f = write_study(root / "s.yaml", synthetic_study(workers=1))
    r = cli("run", str(f), "--out", str(root / "S"), "--budget", "40", "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr
    return root / "S"


def _no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def test_empty_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "S"
    folder.mkdir()
    (folder / "study.sqlite").write_bytes(b"")
    for cmd in ("status", "best", "resume"):
        r = cli(cmd, str(folder), timeout=60)
        assert r.returncode == 2, (cmd, r.stderr)
        assert "is empty" in r.stderr, r.stderr
        _no_traceback(r)
    assert (folder / "study.sqlite").stat().st_size == 0
    assert sorted(p.name for p in folder.iterdir()) in (["study.sqlite"],
                                                        ["study.lock", "study.sqlite"])


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "S"
    folder.mkdir()
    (folder / "study.sqlite").write_text("hello, not a database\n" * 100)
    r = cli("status", str(folder), timeout=60)
    assert r.returncode == 2 and "not an SQLite database" in r.stderr, r.stderr
    _no_traceback(r)


def test_page_corrupted_database(finished: Path, tmp_path: Path) -> None:
    copy = tmp_path / "C"
    shutil.copytree(finished, copy)
    db = copy / "study.sqlite"
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    for offset in range(page, len(data), page):  # keep page 1 (header, schema), damage the rest
        data[offset:offset + 64] = os.urandom(64)
    db.write_bytes(bytes(data))
    for cmd in ("status", "best", "resume"):
        r = cli(cmd, str(copy), "--quiet", timeout=60) if cmd == "resume" else cli(cmd, str(copy))
        assert r.returncode in (1, 2), (cmd, r.returncode, r.stderr)
        assert r.stderr.startswith("error:") and "study.sqlite" in r.stderr, r.stderr
        _no_traceback(r)


def _read_only_runner(folder: Path) -> list[str] | None:
    """A command prefix under which ``folder`` cannot be written: plain file modes for a normal
    user; for root (which ignores modes) a read-only bind mount in a private mount namespace.
    None when neither is possible here."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        return None
    d = str(folder)
    prefix = ["unshare", "-m", "sh", "-c",
              f"mount --bind '{d}' '{d}' && mount -o remount,bind,ro '{d}' && exec \"$@\"", "sh"]
    probe = subprocess.run([*prefix, "touch", f"{d}/probe"], capture_output=True, text=True)
    if probe.returncode == 0 or "Read-only" not in probe.stderr:
        Path(d, "probe").unlink(missing_ok=True)
        return None
    return prefix


def test_status_and_best_work_on_a_read_only_folder(finished: Path, tmp_path: Path) -> None:
    copy = tmp_path / "S"
    shutil.copytree(finished, copy)
    for p in [copy, *copy.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        prefix = _read_only_runner(copy)
        if prefix is None:
            pytest.skip("cannot make a read-only folder here (root without mount namespaces)")
        before = sorted(p.name for p in copy.iterdir())

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*prefix, sys.executable, "-m", "jfhpo", *args],
                                  capture_output=True, text=True, timeout=60)

        r = run("status", str(copy), "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["budget"]["spent_compute"] > 0
        r = run("best", str(copy), "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == json.loads(cli("best", str(finished), "--json").stdout)
        r = run("resume", str(copy), "--quiet")
        assert r.returncode == 2 and "cannot lock the study" in r.stderr, r.stderr
        _no_traceback(r)
        assert sorted(p.name for p in copy.iterdir()) == before
    finally:
        for p in [copy, *copy.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
