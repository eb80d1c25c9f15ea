"""``jfhpo report``: a self-contained offline HTML file, also while the study still runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import cli, report_study_data, write_study

SECTIONS = ("summary", "trace", "fidelity", "curves", "transfer", "parallel", "importance",
            "winner", "runs")
PLOTS = ("trace", "fidelity", "curves", "transfer", "parallel", "importance")


def sections(page: str) -> dict[str, str]:
    """The HTML of each ``<section id=...>`` of a report."""
    return dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, flags=re.S))


def test_report_is_one_offline_file_with_every_section(report_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = cli("report", str(report_study), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout
    page = out.read_text()
    assert not re.search(r"<(script|img|iframe)[^>]+src=|<link[^>]+href=", page), \
        "the report must not load anything"
    assert "could not draw" not in page
    parts = sections(page)
    assert tuple(parts) == SECTIONS
    for name in PLOTS:
        svg = re.search(r"<svg.*?</svg>", parts[name], flags=re.S)
        assert svg, f"section {name} has no figure"
        assert svg.group(0).count("<path") >= 5, f"section {name}'s figure is empty"
    status = json.loads(cli("status", str(report_study), "--json").stdout)
    best = status["best"]
    # the winner, ready to copy: the JSON block parses back to the effective configuration
    block = re.search(r'<pre id="eff-json">(.*?)</pre>', parts["winner"], flags=re.S)
    assert block
    import html

    assert json.loads(html.unescape(block.group(1))) == best["effective_config"]
    # importance: every searched parameter ranked by Optuna's fANOVA
    for name in best["config"]:
        assert f"<td>{name}</td>" in parts["importance"]
    assert "fANOVA" in parts["importance"]
    # summary: spend by phase and the winner against the recipe
    for phase, spent in status["budget"]["by_phase"].items():
        label = "confirmation" if phase == "confirm" else phase
        assert f"<td>{label}</td><td class=num>{spent:.1f}</td>" in parts["summary"]
    assert "<td>winner" in parts["summary"] and "recipe</td>" in parts["summary"]
    assert "Every configuration confirmed on the target" in parts["summary"]
    # every stopped run's rule is in the legend of the learning curves
    for run in status["runs"]:
        if run["stop_reason"]:
            assert f"stopped: {run['stop_reason']['rule']}" in parts["curves"]
    # default location: the study folder
    r = cli("report", str(report_study))
    assert r.returncode == 0 and (report_study / "report.html").exists()


def test_report_of_a_study_with_failures(failing_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.html"
    r = cli("report", str(failing_study), "--out", str(out))
    assert r.returncode == 0, r.stderr
    parts = sections(out.read_text())
    assert "failed" in parts["fidelity"]  # the legend of the fidelity map
    assert "failed: RuntimeError: synthetic failure at step 15" in parts["runs"]
    assert "No confirmation on the target yet" in parts["summary"]


def test_report_while_the_study_runs(tmp_path: Path) -> None:
    """Reports regenerated during a run read a consistent snapshot and do not disturb it."""
    data = report_study_data()
    data["backend"]["options"]["sleep"] = 0.004  # real seconds per step: a run of a few seconds
    data["budget"] = {"seconds": 150}
    path = write_study(tmp_path / "s.yaml", data)
    proc = subprocess.Popen([sys.executable, "-m", "jfhpo", "run", str(path), "--out",
                             str(tmp_path / "S"), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    made = 0
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (tmp_path / "S" / "study.sqlite").exists():
                r = cli("report", str(tmp_path / "S"), "--out", str(tmp_path / f"r{made}.html"))
                assert r.returncode == 0, r.stderr
                page = (tmp_path / f"r{made}.html").read_text()
                assert tuple(sections(page)) == SECTIONS
                made += 1
            time.sleep(0.2)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert made >= 1, "the study ended before a report could be made during it"
    r = cli("report", str(tmp_path / "S"), "--out", str(tmp_path / "final.html"))
    assert r.returncode == 0, r.stderr


def test_report_errors(tmp_path: Path) -> None:
    r = cli("report", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "not a study folder" in r.stderr
