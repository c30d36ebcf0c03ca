"""Drive Snakemake's HTML report in headless Chromium without a network or a DevTools client.

The report is a single-page React app: one HTML file whose scripts hold every result as a data URI (``results``)
and the menu's categories (``categories``), and whose ``app`` object switches the view. A view is opened by a
copy of the report with a small script appended: it waits for ``app``, opens a category and shows one result,
then measures what the test needs and writes it as JSON into ``<body data-rnnmem="…">``, which ``--dump-dom``
returns. ``--virtual-time-budget`` lets the page's timers and image decoding run before the dump.

Run as a script, it writes the README's screenshots from a built report:

    python tests/workflow/report_browser.py smoke/results/report.html docs/images
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
    "--autoplay-policy=no-user-gesture-required",
]
WINDOW = (1400, 1000)

# Waits for the app, runs ACTION (JavaScript using `show(suffix)`), then MEASURE until it returns a value.
SCRIPT = """
<script>
(function () {
  function resultPath(suffix) { return Object.keys(results).find(function (p) { return p.endsWith(suffix); }); }
  function show(suffix) {
    var path = resultPath(suffix);
    if (!path) { return false; }
    var entry = results[path];
    var kind = entry.mime_type.indexOf("image/") === 0 ? "img" : "html";
    var category = Object.keys(categories).find(function (c) {
      return Object.values(categories[c]).some(function (paths) { return paths.indexOf(path) >= 0; });
    });
    var subcategory = Object.keys(categories[category]).find(function (s) {
      return categories[category][s].indexOf(path) >= 0;
    });
    app.setView({navbarMode: "subcategory", category: category, subcategory: subcategory, content: kind,
                 contentPath: entry.data_uri, resultPath: path});
    return true;
  }
  function done(value) { document.body.setAttribute("data-rnnmem", JSON.stringify(value)); }
  var tries = 0;
  function measure() {
    var value = (function () { MEASURE })();
    if (value === undefined && tries++ < 200) { setTimeout(measure, 50); return; }
    done(value === undefined ? {timeout: true} : value);
  }
  function start() {
    if (typeof app === "undefined" || !app) { setTimeout(start, 50); return; }
    ACTION
    setTimeout(measure, 50);
  }
  setTimeout(start, 50);
})();
</script>
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def with_script(report: Path, action: str, measure: str, target: Path) -> Path:
    """A copy of ``report`` with the view script (``action``, ``measure``: JavaScript) appended to its body."""
    text = report.read_text(encoding="utf-8")
    script = SCRIPT.replace("ACTION", action).replace("MEASURE", measure)
    at = text.rfind("</body>")
    target.write_text(text[:at] + script + text[at:], encoding="utf-8")
    return target


def run_chromium(
    page: Path,
    workdir: Path,
    *,
    screenshot: Path | None = None,
    budget_ms: int = 15000,
    window: tuple[int, int] = WINDOW,
) -> subprocess.CompletedProcess:
    browser = chromium()
    if browser is None:
        raise RuntimeError("no Chromium on PATH")
    command = [
        browser,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={workdir / 'profile'}",
        f"--virtual-time-budget={budget_ms}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={window[0]},{window[1]}",
    ]
    command.append(f"--screenshot={screenshot}" if screenshot else "--dump-dom")
    return subprocess.run([*command, page.as_uri()], capture_output=True, text=True, timeout=180)


def measured(dom: str) -> dict | None:
    """The JSON the view script wrote into the dumped DOM, or None."""
    match = re.search(r'data-rnnmem="([^"]*)"', dom)
    return json.loads(html.unescape(match.group(1))) if match else None


def view(report: Path, workdir: Path, action: str, measure: str, name: str) -> tuple[dict | None, str]:
    """Open a view of the report, return (what ``measure`` returned, the dumped DOM)."""
    page = with_script(report, action, measure, workdir / f"{name}.html")
    done = run_chromium(page, workdir)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return measured(done.stdout), done.stdout


def result_data(report: Path, suffix: str) -> bytes:
    """The bytes of the report's result whose path ends with ``suffix`` (decoded from its data URI)."""
    text = report.read_text(encoding="utf-8")
    match = re.search(r'<script id="results">\s*var results = (.*?);\s*</script>', text, re.DOTALL)
    if match is None:
        raise ValueError(f"{report}: no results script")
    results = json.loads(match.group(1))
    path = next(p for p in results if p.endswith(suffix))
    return base64.b64decode(results[path]["data_uri"].split("base64,", 1)[1])


SHOW_IMAGE_MEASURE = """
  var img = document.querySelector('img[src^="data:image/png"]');
  if (!img || !img.complete || !img.naturalHeight) { return undefined; }
  var r = img.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, width: r.width, viewport: window.innerHeight,
          natural: [img.naturalWidth, img.naturalHeight]};
"""

SHOW_FRAME_MEASURE = """
  var frame = document.querySelector("iframe");
  if (!frame) { return undefined; }
  return {src: frame.getAttribute("src").slice(0, 40)};
"""

AUDIO_MEASURE = """
  var players = Array.prototype.slice.call(document.querySelectorAll("audio"));
  if (players.length === 0) { return {players: 0}; }
  if (players.some(function (a) { return a.readyState < 1 && !a.error; })) { return undefined; }
  return {players: players.length, durations: players.map(function (a) { return a.duration; }),
          errors: players.filter(function (a) { return a.error; }).length};
"""


def audio_report(page: bytes, workdir: Path, budget_ms: int = 20000) -> dict | None:
    """Open a samples page (its HTML bytes) alone and return what its audio players report: how many, each one's
    duration in seconds once its metadata has loaded, and how many failed to decode."""
    text = page.decode("utf-8")
    script = (
        "<script>(function () { var tries = 0; function measure() { var value = (function () {"
        + AUDIO_MEASURE
        + "})(); if (value === undefined && tries++ < 300) { setTimeout(measure, 50); } "
        "else { document.body.setAttribute('data-rnnmem', JSON.stringify(value === undefined ? "
        "{timeout: true} : value)); } } setTimeout(measure, 50); })();</script>"
    )
    at = text.rfind("</body>")
    target = workdir / "samples-page.html"
    target.write_text(text[:at] + script + text[at:], encoding="utf-8")
    done = run_chromium(target, workdir, budget_ms=budget_ms)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return measured(done.stdout)


SCREENSHOTS = {  # file name -> result path suffix to show (None: the landing page)
    "report-landing.png": None,
    "report-table.png": "chorales/scores.html",
    "report-samples.png": "_modern.html",
}


def screenshots(report: Path, out_dir: Path, max_bytes: int = 250_000) -> list[Path]:
    """The README's screenshots of ``report`` into ``out_dir``: landing page, a table, a samples page; each PNG
    is quantized with Pillow when it is over ``max_bytes``."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="rnnmem-report-") as tmp:
        workdir = Path(tmp)
        for name, suffix in SCREENSHOTS.items():
            action = "" if suffix is None else f"show({json.dumps(suffix)});"
            page = with_script(report, action, "return {};", workdir / name.replace(".png", ".html"))
            shot = workdir / name
            done = run_chromium(page, workdir, screenshot=shot)
            if done.returncode != 0 or not shot.is_file():
                raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
            target = out_dir / name
            image = Image.open(shot).convert("RGB")
            image.save(target, optimize=True)
            if target.stat().st_size > max_bytes:
                image.quantize(colors=128).save(target, optimize=True)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of a built report (landing page, a table, samples).")
    parser.add_argument("report", type=Path, help="the report's HTML file (snakemake --report report.html)")
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path(__file__).resolve().parents[2] / "docs/images")
    args = parser.parse_args(argv)
    if chromium() is None:
        print("no Chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    for path in screenshots(args.report, args.out_dir):
        print(f"{path} ({path.stat().st_size // 1000} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
