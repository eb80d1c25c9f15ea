"""The report in a real browser: headless Chromium renders it with no console message, every
figure has a size on the page, and a screenshot is saved.

Chromium comes from the Debian package ``chromium`` (``make test`` installs it where apt-get may
run); where it is missing the test is skipped with the reason printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.conftest import cli

PLOTS = ("trace", "fidelity", "curves", "transfer", "parallel", "importance")

#: appended to a copy of the page: measures each figure as laid out and leaves the numbers in
#: the DOM, which ``--dump-dom`` prints after the page's scripts ran
_PROBE = """<script>
document.body.setAttribute('data-probe', JSON.stringify(Array.from(
  document.querySelectorAll('section')).map(function (s) {
    var svg = s.querySelector('svg'); var r = svg ? svg.getBoundingClientRect() : null;
    return [s.id, r ? Math.round(r.width) : 0, r ? Math.round(r.height) : 0];
  })));
</script></body>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    reason = ("Chromium is not installed (Debian package `chromium`; `make test` installs it "
              "where apt-get can run): browser test skipped")
    print(reason)
    pytest.skip(reason)


def browse(page: Path, *extra: str) -> tuple[str, list[str]]:
    """Open ``page`` in headless Chromium: the DOM after scripts ran, and every console line."""
    r = subprocess.run(
        [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--enable-logging=stderr", "--v=0", "--window-size=1200,900", *extra,
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    return r.stdout, console


def test_a_page_with_a_script_error_is_caught(tmp_path: Path) -> None:
    """The check below can fail: a broken script shows up as console lines."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p>"
                   "<script>console.error('boom'); notAFunction();</script></body></html>")
    _, console = browse(bad, "--dump-dom")
    assert any("boom" in line for line in console)
    assert any("notAFunction" in line for line in console)


def test_report_renders_in_chromium(report_study: Path, tmp_path: Path) -> None:
    chromium()
    out = tmp_path / "report.html"
    r = cli("report", str(report_study), "--out", str(out))
    assert r.returncode == 0, r.stderr

    dom, console = browse(out, "--dump-dom")
    assert console == [], console
    assert "jfhpo report: report-test" in dom

    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text().replace("</body>", _PROBE, 1))
    dom, console = browse(probed, "--dump-dom")
    assert console == [], console
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the probe script did not run"
    sizes = {sid: (w, h) for sid, w, h in json.loads(found.group(1).replace("&quot;", '"'))}
    for sid in PLOTS:
        w, h = sizes[sid]
        assert w > 300 and h > 100, f"figure of section {sid} is laid out at {w}x{h}"

    shot = tmp_path / "report.png"
    _, console = browse(out, "--hide-scrollbars", "--window-size=1200,4200",
                        f"--screenshot={shot}")
    assert console == [], console
    assert shot.stat().st_size > 50_000
    import numpy as np
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 4200)
        grey = np.asarray(im.convert("L").resize((120, 420)))
    assert (grey < 230).mean() > 0.02, "the screenshot is mostly blank"
    keep = os.environ.get("JFHPO_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
    print(f"screenshot saved: {shot}")
