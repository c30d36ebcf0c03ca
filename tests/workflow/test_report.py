"""The smoke report opens in headless Chromium: every figure renders and no script fails."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import run_snakemake, smoke_configs

pytestmark = pytest.mark.workflow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")


def test_smoke_report_shows_every_figure(smoke_run, tmp_path):
    browser = chromium()
    report = smoke_run / "results" / "report.html"
    run_snakemake(smoke_run, "--configfile", *smoke_configs(smoke_run), "--report", str(report))
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
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
