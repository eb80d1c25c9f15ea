"""Where a study folder may go: confined default names and a safe ``--out``.

Without ``--out`` a study goes to ``studies/<name>-<time>``; the study's ``name`` is free text, so
it is reduced to a plain folder name first (no ``/``, no ``..``, no absolute path, no control
characters, at most ``MAX_FOLDER_NAME`` characters). With ``--out`` the user chose the folder, but
an existing folder is used only when it is empty (a new study) or already a study (refused with a
pointer to ``resume``): jfhpo never writes study files among someone else's files, and never
deletes anything it did not write.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_FOLDER_NAME = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class OutFolderError(ValueError):
    """The chosen study folder cannot hold a new study; a user error (exit code 2)."""


def safe_folder_name(name: str) -> str:
    """``name`` as one path component under studies/: letters, digits and ``._+-`` kept, runs of
    anything else become ``_``, leading dots and dashes dropped, cut to MAX_FOLDER_NAME."""
    text = _UNSAFE.sub("_", name).lstrip(".-_")
    text = text[:MAX_FOLDER_NAME].rstrip("._-")
    return text or "study"


def default_folder(name: str, stamp: str, root: str | Path = "studies") -> Path:
    """``root/<safe name>-<stamp>``; the result always lies directly inside ``root``."""
    folder = Path(root) / f"{safe_folder_name(name)}-{stamp}"
    assert folder.parent == Path(root)
    return folder


def check_out_folder(out: Path, db_name: str, lock_name: str) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that is not a study. A folder
    holding only a lock file (a writer that just started) counts as empty: the lock decides."""
    if not out.exists():
        if out.is_symlink():
            raise OutFolderError(f"--out {out} is a broken symbolic link")
        return
    if not out.is_dir():
        raise OutFolderError(f"--out {out} exists and is not a folder")
    if (out / db_name).exists():
        raise FileExistsError(
            f"{out} already holds a study; use `jfhpo resume {out}` or another --out")
    try:
        entries = [e for e in os.listdir(out) if e != lock_name]
    except OSError as exc:
        raise OutFolderError(f"--out {out} cannot be read: {exc.strerror or exc}") from None
    if entries:
        shown = ", ".join(sorted(entries)[:5]) + (" ..." if len(entries) > 5 else "")
        raise OutFolderError(
            f"--out {out} is a folder with other files in it ({shown}) and no study; "
            f"choose a new or empty folder (nothing there was touched)")
