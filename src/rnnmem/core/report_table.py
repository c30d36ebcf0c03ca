"""A CSV table as a self-contained HTML page, for Snakemake's report.

The report shows an HTML result in an iframe but only offers a CSV result as a download, so every summary table
also gets a page: the table as a real ``<table>`` (cells exactly as the CSV writes them, numbers right-aligned, the
header row kept in view while scrolling) and a link that downloads the CSV itself. The page has no script and
no outside resource (the report embeds it as a data URI), and the same CSV gives the same bytes.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from pathlib import Path

from rnnmem.core.atomic import write_text
from rnnmem.core.errors import InputFileError
from rnnmem.core.progress import summary

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.IGNORECASE)

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 12px; color: #111; background: #fff; }
h1 { font-size: 16px; margin: 0 0 4px 0; }
p.meta { margin: 0 0 10px 0; color: #444; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 7px; white-space: nowrap; }
th { background: #eef1f5; position: sticky; top: 0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f7f7f7; }
"""


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, cells as written; :class:`InputFileError` naming the file when it has no
    header or is not text."""
    return parse_csv_rows(Path(path).read_bytes(), path)


def parse_csv_rows(data: bytes, path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the CSV bytes ``data`` read from ``path`` (named in errors), as :func:`read_csv_rows`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(f"{path}: not a CSV table (not UTF-8 text)") from error
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise InputFileError(f"{path}: not a CSV table (no header row)")
    return rows[0], rows[1:]


def _cell(value: str, tag: str = "td") -> str:
    css = ' class="num"' if tag == "td" and _NUMBER.match(value.strip()) else ""
    return f"<{tag}{css}>{html.escape(value)}</{tag}>"


def table_html(header: list[str], rows: list[list[str]], title: str, csv_bytes: bytes | None = None) -> str:
    """The page: a title, the row count (and a download link of ``csv_bytes`` when given), and the table."""
    width = len(header)
    body = []
    for row in rows:
        cells = list(row) + [""] * (width - len(row))  # short rows padded, as a spreadsheet shows them
        body.append("<tr>" + "".join(_cell(value) for value in cells) + "</tr>")
    download = ""
    if csv_bytes is not None:
        uri = "data:text/csv;base64," + base64.b64encode(csv_bytes).decode("ascii")
        download = f' · <a download="{html.escape(title)}" href="{uri}">download the CSV</a>'
    noun = "row" if len(rows) == 1 else "rows"
    return html_page(title, STYLE, [
        f'<p class="meta">{len(rows)} {noun} × {width} columns{download}</p>',
        "<table>",
        "<thead><tr>" + "".join(_cell(name, "th") for name in header) + "</tr></thead>",
        "<tbody>",
        *body,
        "</tbody>",
        "</table>",
    ])


def html_page(title: str, style: str, body: list[str]) -> str:
    """A self-contained HTML page for the report's iframe: ``title`` as title and heading, then ``body``'s lines."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', '<head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        f"<style>{style}</style>", "</head>", "<body>", f"<h1>{html.escape(title)}</h1>", *body, "</body>", "</html>",
        "",
    ])


def table_page(csv_path: Path, out: Path) -> None:
    """``rnnmem table-html``: write the HTML page of one CSV table (title: the CSV's file name) to ``out``,
    through a temporary file renamed into place."""
    csv_path = Path(csv_path)
    data = csv_path.read_bytes()  # once: the table shown and the file offered for download are the same bytes
    header, rows = parse_csv_rows(data, csv_path)
    write_text(out, table_html(header, rows, csv_path.name, data))
    summary(f"{csv_path.name}: {len(rows)} rows × {len(header)} columns -> {out}")
