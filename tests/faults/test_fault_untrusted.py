"""Faults: no untrusted deserialization (issue 10, item 2).

A pickle planted where music21 keeps its cached copy of a chorale (``<TMPDIR>/music21/m21-….p.gz``, the shared
temporary folder by default) must not run when the pipeline parses that chorale; and no module in ``src/`` may
load a file in a way that can execute code (a scan, so that a later change cannot add one).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "rnnmem"
NUMBERS = [1, 2]  # BWV 269 and 347, parsed in this process (fewer than SERIAL_BELOW)

# Where music21 would look for its cached copy of each chorale's file under TMPDIR, computed by music21 itself in a
# fresh interpreter (tempfile.gettempdir() is fixed at its first call, so not in this process).
_PICKLE_PATHS = """
import json, sys
from music21 import converter, environment
from rnnmem.chorales import music21_source as m21s
table = m21s.riemenschneider_table()
scratch = environment.Environment().getRootTempDir()
out = {"scratch": str(scratch), "pickles": {}}
for number in json.loads(sys.argv[1]):
    source = m21s.corpus_file(str(table[number]["bwv"]))
    out["pickles"][str(source)] = str(converter.PickleFilter(source).getPickleFp(scratch, zipType="gz"))
print(json.dumps(out))
"""


class _Plant:
    """Unpickling this creates the marker file: the proof that the planted pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _env(tmpdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TMPDIR=str(tmpdir), TEMP=str(tmpdir), TMP=str(tmpdir), RNNMEM_DEVICE="cpu")
    return env


def test_a_planted_music21_pickle_never_runs(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = _env(tmpdir)
    found = subprocess.run([sys.executable, "-c", _PICKLE_PATHS, json.dumps(NUMBERS)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    where = json.loads(found.stdout)
    scratch = Path(where["scratch"])
    if not scratch.is_relative_to(tmpdir):  # a music21 setting points the scratch folder elsewhere: plant nothing
        pytest.skip(f"music21's scratch folder is {scratch} (a user setting), not under the test's TMPDIR")
    scratch.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "planted-pickle-ran"
    payload = zlib.compress(pickle.dumps(_Plant(marker)))  # music21's format: zlib-compressed pickle
    for source, planted in where["pickles"].items():
        assert Path(planted).is_relative_to(tmpdir) and Path(source).is_file()
        Path(planted).write_bytes(payload)  # newer than the corpus file: music21 would prefer it
    assert len(where["pickles"]) == len(NUMBERS)

    out = tmp_path / "out"
    params = json.dumps({"repeats": "as_written", "on_bad_file": "error", "numbers": NUMBERS})
    run = subprocess.run(
        [sys.executable, "-m", "rnnmem", "chorales-events", "--source", "music21", "--params", params,
         "--events", str(out / "events.jsonl"), "--transposed", str(out / "transposed.jsonl"),
         "--skipped", str(out / "skipped.csv")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not marker.exists(), "the planted pickle was unpickled"
    assert all(Path(p).read_bytes() == payload for p in where["pickles"].values())  # read or not, never replaced

    from rnnmem.chorales.music21_source import load_music21_chorales
    from rnnmem.chorales.store import read_chorales

    chorales = read_chorales(out / "events.jsonl")
    assert [(c.number, c.bwv) for c in chorales] == [(1, "269"), (2, "347")]
    expected, _ = load_music21_chorales("as_written", "error", NUMBERS, workers=1)  # from source, in this process
    assert [c.dumps() for c in chorales] == [c.dumps() for c in expected]
    assert (out / "skipped.csv").read_text().splitlines()[1:] == []


# ------------------------------------------------------------------------------------------- scan of every load
# A call is forbidden when its dotted name matches one of these (whatever the module is imported as, the last
# two components are what is matched), unless ``required`` keyword arguments are present with the given value.
_FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal",
                      "jsonpickle", "freezeThaw"}
_FORBIDDEN_CALLS = {
    "read_pickle": "pandas.read_pickle unpickles",
    "unsafe_load": "yaml.unsafe_load runs code",
    "full_load": "yaml.full_load builds arbitrary objects",
    "thaw": "music21's thaw unpickles",
    "thawStream": "music21's thaw unpickles",
    "parseURL": "music21 caches and unpickles downloads",
}
# music21 entry points that read a cached pickle unless told not to (converter.parse/parseFile, corpus.parse);
# the pipeline uses Converter.parseFileNoPickle, which never does.
_MUSIC21_CACHED = {("converter", "parse"), ("converter", "parseFile"), ("corpus", "parse"), ("Converter", "parseFile")}
_REQUIRED = {
    "torch.load": ("weights_only", True),
    "np.load": ("allow_pickle", False),
    "numpy.load": ("allow_pickle", False),
    "yaml.load": None,  # never: yaml.safe_load
}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def forbidden_loads(path: Path, root: Path = REPO) -> list[str]:
    """``file:line: what`` (relative to ``root``) for every import or call in ``path`` that could deserialize code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            names = [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                if set(module.split(".")) & _FORBIDDEN_MODULES:
                    found.append(f"{where}: imports {module}")
            for name in names:
                if name in _FORBIDDEN_MODULES or name in _FORBIDDEN_CALLS or (node.module, name) in (
                        ("torch", "load"), ("numpy", "load"), ("yaml", "load"), ("music21.converter", "parse"),
                        ("music21.converter", "parseFile"), ("music21.corpus", "parse")):
                    found.append(f"{where}: imports {name} from {node.module}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        parts = name.split(".")
        tail = ".".join(parts[-2:])
        if parts[-1] in _FORBIDDEN_CALLS:
            found.append(f"{where}: {name}(): {_FORBIDDEN_CALLS[parts[-1]]}")
        elif tuple(parts[-2:]) in _MUSIC21_CACHED and _keyword(node, "forceSource") is not True:
            found.append(f"{where}: {name}() without forceSource=True reads music21's cached pickles")
        elif tail in _REQUIRED:
            required = _REQUIRED[tail]
            if required is None or _keyword(node, required[0]) is not required[1]:
                found.append(f"{where}: {name}() without {required and f'{required[0]}={required[1]}'}")
        elif parts[-1] == "Unpickler" or (len(parts) > 1 and parts[-2] in _FORBIDDEN_MODULES):
            found.append(f"{where}: {name}()")
    return found


_TEXT_FORBIDDEN = re.compile(r"\bpickle\b|torch\.load|np\.load|yaml\.(?:unsafe_|full_)?load\b|read_pickle|"
                             r"converter\.parse\b|corpus\.parse\b")


def test_no_module_can_deserialize_code():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20 and SRC / "chorales" / "music21_source.py" in files
    problems = [problem for path in files for problem in forbidden_loads(path)]
    assert problems == [], "loads that can run code:\n" + "\n".join(problems)
    # the workflow's Python (Snakefile, rules) runs no load at all: every file is read through `python -m rnnmem`
    workflow = [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk")),
                *sorted((REPO / "workflow").rglob("*.py"))]
    hits = [f"{path.relative_to(REPO)}:{number}: {line.strip()}" for path in workflow if path.is_file()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
            if _TEXT_FORBIDDEN.search(line.split("#", 1)[0])]
    assert hits == [], "loads in the workflow:\n" + "\n".join(hits)


def test_the_scan_sees_each_kind_of_forbidden_load(tmp_path):
    """The scan itself: every unsafe form is reported, the safe forms are not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pickle\n"
        "from music21 import converter, corpus\n"
        "import numpy as np, torch, yaml, pandas as pd\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "np.load(p)\n"
        "yaml.load(t, Loader=yaml.SafeLoader)\n"
        "pd.read_pickle(p)\n"
        "converter.parse(p, storePickle=False)\n"
        "corpus.parse('bach/bwv269')\n"
        "converter.thaw(p)\n"
        "from torch import load\n"
        # safe:
        "torch.load(p, map_location='cpu', weights_only=True)\n"
        "np.load(p, allow_pickle=False)\n"
        "yaml.safe_load(t)\n"
        "converter.parse(p, forceSource=True)\n"
        "converter.Converter().parseFileNoPickle(p, format='musicxml')\n"
        "json.loads(t)\n"
        "pd.read_csv(p)\n"
    )
    problems = forbidden_loads(sample, tmp_path)
    lines = sorted(int(problem.split(":")[1]) for problem in problems)
    assert lines == [1, 4, 5, 6, 7, 8, 9, 10, 11, 12], problems


# ------------------------------------------------------------------------------------------- LilyPond input
def test_a_tampered_events_file_cannot_run_scheme_in_lilypond(tmp_path):
    """LilyPond input is a program: a pitch read from a file that says ``#(system ...)`` is refused, not engraved."""
    from rnnmem.chorales.events import Chorale, Event
    from rnnmem.chorales.store import write_chorales

    marker = tmp_path / "scheme-ran"
    scheme = f'#(system "touch {marker}")'
    notes = [Event("note", "c'", Fraction(1, 4)), Event("note", scheme, Fraction(1, 4)), Event("rest", None,
                                                                                               Fraction(1, 2))]
    chorale = Chorale(number=7, bwv="1", title="t", source="music21", time_signatures=["4/4"], key_tonic="c",
                      mode="major", events=notes)
    transposed, png = tmp_path / "transposed.jsonl", tmp_path / "score.png"
    write_chorales(transposed, [chorale])
    run = subprocess.run([sys.executable, "-m", "rnnmem", "chorales-score", "--transposed", str(transposed),
                          "--number", "7", "--out", str(png)],
                         env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and not marker.exists() and not png.exists()
    assert run.stderr.strip().splitlines() == [
        f"rnnmem chorales-score: error: chorale 7: pitch {scheme!r} is not a plain LilyPond name; not engraved"]


@pytest.mark.parametrize(("field", "value"), [
    ("key_tonic", '#(system "true")'), ("key_tonic", "c \\major #(x)"),
    ("time_signatures", ['#(system "true")']), ("time_signatures", ["4/4 #(x)"]),
    ("pitch", "c'#(x)"), ("pitch", "c4"), ("pitch", ""),
])
def test_every_value_spliced_into_lilypond_input_is_checked(field, value):
    from rnnmem.chorales.engrave import lilypond_source
    from rnnmem.chorales.events import Chorale, ChoraleError, Event

    pitch = value if field == "pitch" else "c'"
    chorale = Chorale(number=3, bwv="1", title='"#(system "true")', source="music21",
                      time_signatures=value if field == "time_signatures" else ["4/4"],
                      key_tonic=value if field == "key_tonic" else "c", mode="major",
                      events=[Event("note", pitch, Fraction(1, 1))])
    with pytest.raises(ChoraleError, match="is not a plain LilyPond name"):
        lilypond_source(chorale, chorale.title)
    safe = lilypond_source(Chorale(**{**chorale.__dict__, "key_tonic": "fis", "time_signatures": ["12/8"],
                                      "events": [Event("note", "bes''", Fraction(3, 2))]}), chorale.title)
    assert 'title = "\\"#(system \\"true\\")"' in safe  # the title is a string literal, its quotes escaped
