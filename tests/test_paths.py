"""Study folders stay where the user said: confined default names, a safe --out."""

from __future__ import annotations

from pathlib import Path

import pytest

from jfhpo.paths import MAX_FOLDER_NAME, OutFolderError, check_out_folder, default_folder, safe_folder_name


@pytest.mark.parametrize("name", ["../../../tmp/X", "/tmp/X", "..", ".", "a/../../b", "a\x00b",
                                  "x" * 300, "\u00e9t\u00e9 \U0001f600", "-rf", "", "~/home"])
def test_default_folder_is_one_component_under_studies(name: str) -> None:
    folder = default_folder(name, "20260101-000000")
    assert folder.parent == Path("studies")
    part = folder.name
    assert "/" not in part and "\x00" not in part and not part.startswith(".")
    assert ".." not in Path(part).parts
    assert len(safe_folder_name(name)) <= MAX_FOLDER_NAME


def test_safe_name_keeps_plain_names() -> None:
    assert safe_folder_name("synthetic-demo") == "synthetic-demo"
    assert safe_folder_name("../../escaped") == "escaped"
    assert safe_folder_name("/tmp/X") == "tmp_X"


def test_out_folder_rules(tmp_path: Path) -> None:
    check_out_folder(tmp_path / "new", "study.sqlite", "study.lock")  # absent: fine
    (tmp_path / "empty").mkdir()
    check_out_folder(tmp_path / "empty", "study.sqlite", "study.lock")
    other = tmp_path / "other"
    (other / "checkpoints" / "run-1").mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutFolderError, match="other files in it"):
        check_out_folder(other, "study.sqlite", "study.lock")
    assert (other / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutFolderError, match="not a folder"):
        check_out_folder(tmp_path / "file", "study.sqlite", "study.lock")
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.sqlite").write_bytes(b"")
    with pytest.raises(FileExistsError, match="jfhpo resume"):
        check_out_folder(study, "study.sqlite", "study.lock")
