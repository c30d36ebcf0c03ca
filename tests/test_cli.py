"""The command line built from the registry (rnnmem.commands): every command's help, the version, the registry
against its job functions, real command lines of every rule, and no torch for --help."""

from __future__ import annotations

import inspect
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rnnmem import __version__
from rnnmem.cli import build_parser, job_function, main
from rnnmem.commands import COMMANDS

P = '{"a":1}'

# one command line per command, as the rules write it, and the namespace it must give (job parameter names)
CASES: dict[str, tuple[str, dict]] = {
    "reber-train": (f"--params '{P}' --model m.pt --spec s.json --table t.csv --gradients g.csv",
                    {"params": {"a": 1}, "model_path": Path("m.pt"), "spec_path": Path("s.json"),
                     "table_path": Path("t.csv"), "gradients_path": Path("g.csv")}),
    "reber-tables": ("--runs a.csv b.csv --success s.csv --summary y.csv --summary-md y.md",
                     {"run_tables": [Path("a.csv"), Path("b.csv")], "success_path": Path("s.csv"),
                      "summary_path": Path("y.csv"), "summary_md": Path("y.md")}),
    "reber-figure": ("--figure fig07 --model m.pt --spec s.json --table t.csv --out f.png",
                     {"figure": "fig07", "model_path": Path("m.pt"), "spec_path": Path("s.json"),
                      "table_path": Path("t.csv"), "out": Path("f.png")}),
    "indistinguishable": (f"--params '{P}' --models a.pt b.pt --specs a.json b.json --out o.csv",
                          {"params": {"a": 1}, "models": [Path("a.pt"), Path("b.pt")],
                           "specs": [Path("a.json"), Path("b.json")], "out": Path("o.csv")}),
    "toy-language": (f"--params '{P}' --out o.csv", {"params": {"a": 1}, "out": Path("o.csv")}),
    "gradient-summary": ("--histograms h1.csv h2.csv --table t.csv --fig12 a.png --fig13 b.png --zoom-max 0.5",
                         {"histogram_paths": [Path("h1.csv"), Path("h2.csv")], "table_out": Path("t.csv"),
                          "fig12": Path("a.png"), "fig13": Path("b.png"), "zoom_max": 0.5}),
    "gradient-lag": (f"--params '{P}' --models a.pt --specs a.json --table t.csv --figure f.png",
                     {"params": {"a": 1}, "models": [Path("a.pt")], "specs": [Path("a.json")],
                      "table_out": Path("t.csv"), "fig": Path("f.png")}),
    "dlk": (f"--params '{P}' --out o.csv", {"params": {"a": 1}, "out": Path("o.csv")}),
    "dlk-conventions": (f"--params '{P}' --parts a.csv --out o.csv",
                        {"params": {"a": 1}, "parts": [Path("a.csv")], "out": Path("o.csv")}),
    "dlk-merge": ("--parts a.csv b.csv --out o.csv", {"parts": [Path("a.csv"), Path("b.csv")], "out": Path("o.csv")}),
    "dlk-figures": (f"--params '{P}' --tables a.csv --heatmaps h.png --curves c.png",
                    {"params": {"a": 1}, "tables": [Path("a.csv")], "heatmaps": [Path("h.png")],
                     "curves": Path("c.png")}),
    "capacity": (f"--params '{P}' --esn e.csv --gru g.csv --totals t.csv",
                 {"params": {"a": 1}, "esn_out": Path("e.csv"), "gru_out": Path("g.csv"),
                  "totals_out": Path("t.csv")}),
    "capacity-input-scale": (f"--params '{P}' --table t.csv --figure f.png",
                             {"params": {"a": 1}, "table_out": Path("t.csv"), "fig": Path("f.png")}),
    "capacity-linear": (f"--params '{P}' --table t.csv --figure f.png",
                        {"params": {"a": 1}, "table_out": Path("t.csv"), "fig": Path("f.png")}),
    "capacity-figures": (f"--params '{P}' --esn e.csv --gru g.csv --totals t.csv --dlk d1.csv d2.csv "
                         "--fig16 a.png --mc-gru b.png --mc-total c.png --dlk-vs-mc d.png",
                         {"params": {"a": 1}, "esn": Path("e.csv"), "gru": Path("g.csv"), "totals": Path("t.csv"),
                          "dlk_tables": [Path("d1.csv"), Path("d2.csv")], "fig16": Path("a.png"),
                          "mc_gru": Path("b.png"), "mc_total": Path("c.png"), "dlk_vs_mc": Path("d.png")}),
    "chorales-fetch": ("--url https://x/y.tar.gz --archive a.tgz --scores-dir s --listing l.txt",
                       {"url": "https://x/y.tar.gz", "archive": Path("a.tgz"), "scores_dir": Path("s"),
                        "listing": Path("l.txt")}),
    "chorales-events": (f"--source lilypond --params '{P}' --listing l.txt --events e.jsonl "
                        "--transposed t.jsonl --skipped s.csv",
                        {"source": "lilypond", "params": {"a": 1}, "listing": Path("l.txt"),
                         "events_out": Path("e.jsonl"), "transposed_out": Path("t.jsonl"),
                         "skipped_out": Path("s.csv")}),
    "chorales-dataset": (f"--params '{P}' --transposed t.jsonl --skipped s.csv --out-dir d",
                         {"params": {"a": 1}, "transposed": Path("t.jsonl"), "skipped": Path("s.csv"),
                          "out_dir": Path("d")}),
    "chorales-augmented": (f"--params '{P}' --tokens t.jsonl --vocab v.json --transposed r.jsonl --out-dir d",
                           {"params": {"a": 1}, "tokens": Path("t.jsonl"), "vocab": Path("v.json"),
                            "transposed": Path("r.jsonl"), "out_dir": Path("d")}),
    "chorales-agreement": ("--lilypond a.jsonl --music21 b.jsonl --out o.csv",
                           {"lilypond": Path("a.jsonl"), "music21": Path("b.jsonl"), "out": Path("o.csv")}),
    "chorales-score": ("--transposed t.jsonl --number 3 --out o.png",
                       {"transposed": Path("t.jsonl"), "number": 3, "out": Path("o.png")}),
    "lm-train": (f"--params '{P}' --tokens t.jsonl --vocab v.json --checkpoint-dir c --model m.pt --curve c.csv "
                 "--budget-vocab b.json",
                 {"params": {"a": 1}, "tokens": Path("t.jsonl"), "vocab": Path("v.json"),
                  "checkpoint_dir": Path("c"), "model_out": Path("m.pt"), "curve_out": Path("c.csv"),
                  "budget_vocab": Path("b.json")}),
    "lm-score": (f"--params '{P}' --tokens t.jsonl --vocab v.json --model m.pt --out o.csv",
                 {"params": {"a": 1}, "tokens": Path("t.jsonl"), "vocab": Path("v.json"),
                  "model_path": Path("m.pt"), "out": Path("o.csv")}),
    "lm-ngram": (f"--params '{P}' --tokens t.jsonl --vocab v.json --out o.csv --orders r.csv",
                 {"params": {"a": 1}, "tokens": Path("t.jsonl"), "vocab": Path("v.json"), "out": Path("o.csv"),
                  "orders_out": Path("r.csv")}),
    "lm-ensemble-score": (f"--params '{P}' --tokens t.jsonl --vocab v.json --models a.pt b.pt --out o.csv",
                          {"params": {"a": 1}, "tokens": Path("t.jsonl"), "vocab": Path("v.json"),
                           "model_paths": [Path("a.pt"), Path("b.pt")], "out": Path("o.csv")}),
    "lm-scores": ("--parts a.csv b.csv --out o.csv", {"parts": [Path("a.csv"), Path("b.csv")], "out": Path("o.csv")}),
    "lm-samples": (f"--params '{P}' --vocab v.json --model m.pt n.pt --out-dir d --listing l.csv "
                   "--transposed t.jsonl --tokens k.jsonl",
                   {"params": {"a": 1}, "vocab": Path("v.json"), "model_paths": [Path("m.pt"), Path("n.pt")],
                    "out_dir": Path("d"), "listing": Path("l.csv"), "transposed": Path("t.jsonl"),
                    "tokens": Path("k.jsonl")}),
    "lm-sample-metrics": ("--listings a.csv b.csv --transposed t.jsonl --tokens k.jsonl --out o.csv --figure f.png",
                          {"listings": [Path("a.csv"), Path("b.csv")], "transposed": Path("t.jsonl"),
                           "tokens": Path("k.jsonl"), "out": Path("o.csv"), "figure": Path("f.png")}),
    "fig21": (f"--params '{P}' --sample-dirs a b --out o.png",
              {"params": {"a": 1}, "sample_dirs": [Path("a"), Path("b")], "out": Path("o.png")}),
    "learning-curves": ("--curves a.csv b.csv --table t.csv --figure f.png",
                        {"curves": [Path("a.csv"), Path("b.csv")], "table_out": Path("t.csv"),
                         "figure": Path("f.png")}),
    "melody-corpus": (f"--params '{P}' --out m.json", {"params": {"a": 1}, "out": Path("m.json")}),
    "melody-baselines": (f"--params '{P}' --melodies m.json --out b.csv",
                         {"params": {"a": 1}, "melodies_path": Path("m.json"), "out": Path("b.csv")}),
    "melody-neural": (f"--params '{P}' --melodies m.json --out n.csv",
                      {"params": {"a": 1}, "melodies_path": Path("m.json"), "out": Path("n.csv")}),
    "melody-benchmark": ("--melodies m.json --parts a.csv b.csv --table t.csv --markdown t.md --figure f.png",
                         {"melodies_path": Path("m.json"), "parts": [Path("a.csv"), Path("b.csv")],
                          "table_out": Path("t.csv"), "markdown": Path("t.md"), "figure": Path("f.png")}),
    "lm-sample-page": (f"--params '{P}' --samples d --listing l.csv --out p.html",
                       {"params": {"a": 1}, "samples": Path("d"), "listing": Path("l.csv"), "out": Path("p.html")}),
    "table-html": ("--csv t.csv --out t.html", {"csv_path": Path("t.csv"), "out": Path("t.html")}),
    "bench": ("--out-dir b --repeats 3 --config c.yaml",
              {"out_dir": Path("b"), "repeats": 3, "config": Path("c.yaml")}),
}


def test_every_command_has_a_case() -> None:
    assert set(CASES) == {c.name for c in COMMANDS}


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_command_line_parses(name: str) -> None:
    argv, expected = CASES[name]
    args = vars(build_parser().parse_args(["--threads", "2", name, *shlex.split(argv)]))
    assert args.pop("command") == name and args.pop("threads") == 2 and args.pop("debug") is False
    assert args == expected


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_registry_matches_job_function(command) -> None:
    parameters = set(inspect.signature(job_function(command)).parameters) - {"threads"}  # the global --threads
    assert sorted(command.dests) == sorted(parameters), "arguments named as the job function's parameters"
    assert ":func:" not in command.help and ":mod:" not in command.help and "``" not in command.help


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command.name, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(command.help.split()) in text
    assert ":func:" not in text and ":mod:" not in text
    for key in command.params_keys:
        assert key in text
    assert ("params" in command.dests) == bool(command.params_keys)


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnmem {__version__}"


def test_models_specs_same_count(capsys) -> None:
    code = main(["indistinguishable", "--params", "{}", "--models", "a.pt", "b.pt", "--specs", "a.json",
                 "--out", "o.csv"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--models, --specs: need the same number of files" in err


def test_help_imports_no_torch() -> None:
    names = [c.name for c in COMMANDS]
    code = ("import sys\nfrom rnnmem.cli import build_parser\n"
            f"for name in {json.dumps(names)}:\n"
            "    try:\n        build_parser().parse_args([name, '--help'])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'music21', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_training_and_scoring_jobs_import_no_music21_matplotlib_or_compiler() -> None:
    """Start-up of the most frequent jobs: music21 (0.4 s), matplotlib (0.5 s) and torch's compiler (1.2 s, pulled
    in by torch.use_deterministic_algorithms) are imported only by the jobs that use them."""
    code = ("import sys\nfrom rnnmem.cli import BY_NAME, job_function\n"
            "from rnnmem.core.runtime import configure_torch\nconfigure_torch(1)\n"
            "for name in ('lm-train', 'lm-score', 'reber-train', 'dlk'):\n    job_function(BY_NAME[name])\n"
            "print(sorted(m for m in ('music21', 'matplotlib', 'torch._inductor') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
