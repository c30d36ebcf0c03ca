"""CSV tables as HTML pages for the report (rnnmem.core.report_table, `rnnmem table-html`)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from rnnmem.cli import main
from rnnmem.core.report_table import read_csv_rows, table_html


class Cells(HTMLParser):
    """Header and body cells of the one table of a page, and every link."""

    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.links: list[dict[str, str]] = []
        self._cell: str | None = None
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell, self._tag = "", tag
        elif tag == "a":
            self.links.append(dict(attrs))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            (self.header if self._tag == "th" else self.rows[-1]).append(self._cell)
            self._cell = None


def parse(page: str) -> Cells:
    cells = Cells()
    cells.feed(page)
    cells.rows = [row for row in cells.rows if row]
    return cells


def test_page_has_the_csv_cells_verbatim_and_the_csv_to_download(tmp_path):
    csv = tmp_path / "scores.csv"
    data = 'model,nll,note\nvanilla,1.2345678,"a, b"\ngru,<1e-6,x & y\n'
    csv.write_text(data, encoding="utf-8")
    out = tmp_path / "pages" / "scores.html"
    assert main(["table-html", "--csv", str(csv), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    cells = parse(page)
    assert cells.header == ["model", "nll", "note"]
    assert cells.rows == [["vanilla", "1.2345678", "a, b"], ["gru", "<1e-6", "x & y"]]
    assert "<script" not in page and "http" not in page  # self-contained: the report embeds it as a data URI
    (link,) = cells.links
    assert link["download"] == "scores.csv"
    assert base64.b64decode(link["href"].split(",", 1)[1]).decode() == data
    assert re.search(r'<td class="num">1\.2345678</td>', page) and '<td class="num">&lt;1e-6' not in page
    assert list(tmp_path.joinpath("pages").iterdir()) == [out]  # written through a temporary file, renamed


def test_same_csv_same_bytes_and_short_rows_padded():
    first = table_html(["a", "b"], [["1"], ["2", "3"]], "t.csv", b"a,b\n1\n2,3\n")
    assert first == table_html(["a", "b"], [["1"], ["2", "3"]], "t.csv", b"a,b\n1\n2,3\n")
    assert parse(first).rows == [["1", ""], ["2", "3"]]


def test_empty_file_is_named_in_one_line(tmp_path, capsys):
    csv = tmp_path / "empty.csv"
    csv.write_text("", encoding="utf-8")
    assert main(["table-html", "--csv", str(csv), "--out", str(tmp_path / "o.html")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{csv}: not a CSV table" in err
    assert not (tmp_path / "o.html").exists()


def test_header_only_table_has_no_rows(tmp_path):
    csv = tmp_path / "h.csv"
    csv.write_text("a,b\n", encoding="utf-8")
    header, rows = read_csv_rows(csv)
    assert header == ["a", "b"] and rows == []
    assert "0 rows × 2 columns" in table_html(header, rows, "h.csv")


@pytest.mark.parametrize("value", ["1", "-2.5", "1e-06", "nan", "inf", ".5"])
def test_numbers_are_right_aligned(value):
    assert f'<td class="num">{value}</td>' in table_html(["x"], [[value]], "t.csv")
