"""The smoke report in headless Chromium: every figure renders and no script fails; the landing page, every
category, a summary table as an HTML table, tall figures shown from their top, and the samples pages' audio.

Views of the report (a single-page app) are opened by report_browser's appended script; see that module."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import report_browser as rb
from conftest import run_snakemake, smoke_configs

pytestmark = pytest.mark.workflow

CATEGORIES = ("1. Reber grammars", "2. Gradients and memory", "3. Bach chorales", "4. Melody benchmark")


def chromium() -> str:
    path = rb.chromium()
    if path is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def report(smoke_run) -> Path:
    path = smoke_run / "results" / "report.html"
    run_snakemake(smoke_run, "--configfile", *smoke_configs(smoke_run), "--report", str(path))
    return path


class TableCells(HTMLParser):
    """Header cells and body rows of the first <table>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.header: list[str] = []
        self.rows = 0
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables += 1
        elif tag == "th" and self.tables == 1:
            self._in = ""
        elif tag == "tr" and self.tables == 1:
            self.rows += 1

    def handle_data(self, data):
        if self._in is not None:
            self._in += data

    def handle_endtag(self, tag):
        if tag == "th" and self._in is not None:
            self.header.append(self._in)
            self._in = None


def test_smoke_report_shows_every_figure(report, tmp_path):
    browser = chromium()
    common = [browser, *rb.CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
              "--enable-logging=stderr", "--v=0", "--window-size=1400,1000"]
    dom = subprocess.run([*common, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    for figure in ("fig07_reber_outputs_vanilla.png", "fig14_dlk_vanilla.png", "fig19_soprano_bwv269.png"):
        assert figure in dom.stdout, figure
    screenshot = tmp_path / "report.png"
    shot = subprocess.run([*common, f"--screenshot={screenshot}", report.as_uri()], capture_output=True, text=True,
                          timeout=180)
    assert shot.returncode == 0 and screenshot.read_bytes()[:4] == b"\x89PNG", shot.stderr[-2000:]
    assert "Uncaught" not in shot.stderr, shot.stderr[-2000:]


def test_landing_page_and_every_category(report, tmp_path):
    chromium()
    value, dom = rb.view(report, tmp_path, "", "return {title: document.title};", "landing")
    assert value is not None, "the view script did not run"
    text = " ".join(dom.split())
    assert "Recurrent neural networks and memory" in text and "How to read it" in text
    assert "beyond the report" in text
    for category in CATEGORIES:
        assert category in text, category  # the menu lists every category


def test_summary_table_is_an_html_table_in_the_report(report, smoke_run, tmp_path):
    chromium()
    value, _ = rb.view(report, tmp_path, 'show("chorales/scores.html");', rb.SHOW_FRAME_MEASURE, "table")
    assert value and value.get("src", "").startswith("data:text/html"), value  # shown in the report's frame
    page = tmp_path / "scores.html"
    page.write_bytes(rb.result_data(report, "chorales/scores.html"))
    done = rb.run_chromium(page, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = TableCells()
    cells.feed(done.stdout)  # the DOM Chromium built from the page
    with open(smoke_run / "results" / "chorales" / "scores.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert cells.tables == 1 and cells.header == rows[0]
    assert cells.rows == len(rows)  # the header row and one row per CSV row


@pytest.mark.parametrize(
    "figure", ["fig07_reber_outputs_vanilla.png", "fig08_reber_hidden_states.png", "sample_metrics.png"])
def test_tall_figure_is_shown_whole_from_its_top(report, tmp_path, figure):
    """The report's viewer centres an image vertically in the window and cannot scroll above it: a figure taller
    than the window loses its top (title). These figures must fit the window whole."""
    chromium()
    value, _ = rb.view(report, tmp_path, f'show("{figure}");', rb.SHOW_IMAGE_MEASURE, "figure")
    assert value and "top" in value, value
    assert value["top"] >= 0 and value["bottom"] <= value["viewport"], value


def test_samples_page_has_scores_and_playable_audio(report, smoke_run, tmp_path):
    chromium()
    pages = sorted((smoke_run / "results" / "lm" / "samples").glob("*.html"))
    assert pages, "no samples page"
    name = pages[0].name
    page = rb.result_data(report, f"lm/samples/{name}")
    assert page == pages[0].read_bytes()
    text = page.decode("utf-8")
    listing = pages[0].with_suffix(".csv")
    with open(listing, encoding="utf-8", newline="") as handle:
        samples = list(csv.DictReader(handle))
    assert text.count('<section class="sample"') == len(samples)
    assert text.count(".mid</a>") == len(samples)
    env_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    if shutil.which("fluidsynth", path=env_path) and Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file():
        value = rb.audio_report(page, tmp_path)
        assert value and value.get("players") == len(samples), value
        assert value["errors"] == 0 and all(d > 0 for d in value["durations"]), value
    else:
        assert "<audio" not in text and text.count("no audio: ") == 1


def test_screenshots_for_the_readme(report, tmp_path):
    chromium()
    written = rb.screenshots(report, tmp_path / "images")
    assert [p.name for p in written] == list(rb.SCREENSHOTS)
    for path in written:
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size < 300_000, path
