"""``report.html`` in a real browser: headless Chromium renders every plot and the page logs no error.

Skipped when Chromium is absent; ``.ci/run`` installs Debian's ``chromium`` so CI always runs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest

from clara_hydra.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",  # let every script finish before the DOM is dumped
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


def _render(page: Path, profile: Path) -> tuple[str, str]:
    assert CHROMIUM is not None
    run = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout, run.stderr


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_every_plot_renders_without_console_errors(study_dir: tuple[optuna.Study, Path], tmp_path: Path) -> None:
    study, folder = study_dir
    dom, stderr = _render(write_report(study, folder), tmp_path / "profile")
    assert _console(stderr) == []
    assert re.search(r"<html[^>]*data-errors", dom) is None  # the page's own error trap stayed empty
    # plotly draws each figure as <svg class="main-svg"> inside its div once its script has run
    for key in ("history", "importances", "parallel", "slices", "curves", "timeline"):
        block = re.search(rf'<div id="plot-{key}".*?</div>\s*</div>', dom, re.S)
        assert block is not None and 'class="main-svg"' in block.group(0), key


def test_the_check_sees_a_script_error(tmp_path: Path) -> None:
    # The check above must be able to fail: a page with a broken script is caught by both channels.
    from clara_hydra.report.page import _ERRORS

    page = tmp_path / "bad.html"
    page.write_text(f"<html><head>{_ERRORS}</head><body><script>console.error('x'); no_such();</script></body></html>")
    dom, stderr = _render(page, tmp_path / "profile")
    assert re.search(r"<html[^>]*data-errors=[^>]*no_such is not defined", dom)
    assert any("no_such" in line for line in _console(stderr))
