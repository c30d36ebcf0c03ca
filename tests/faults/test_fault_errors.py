"""Fault suite: one-line errors (issue 10, item 4).

Every anticipated error, run as a real ``python -m rnnmem …`` process, ends with exactly one stderr line
``rnnmem <command>: error: <file or key>: <what is wrong>``, a non-zero exit, no traceback and no output file (nor a
hidden temporary one); ``--debug`` or ``RNNMEM_DEBUG=1`` adds the traceback; an unexpected exception (a bug) keeps
its traceback. The processes run concurrently (each one mostly waits on imports) to keep the suite fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from regimes import LM_BLOCKS

from rnnmem.memory.dlk import TABLE_COLUMNS as DLK_COLUMNS

DLK_PARAMS = {"model": "vanilla", "k": 1, "draws": 1, "max_l": 20, "seed": 0, "weight_scale": 1.0,
              "bias": "zero", "input": "one_hot", "tail_threshold": 1e-3, "bootstrap": 10}
VOCAB = ["<unk>", "<s>", "</s>", "c'4", "d'4", "e'4", "|"]
LM_MODEL = {"name": "tiny", "model": "gru", "size": "test", "hidden": 4}
LM_SETTINGS = {**LM_BLOCKS["modern"], "embedding": 4, "dropout": 0.0, "batch_size": 2, "patience": 2,
               "checkpoint_every": 5, "max_epochs": 1}
SAMPLING = {"count": 1, "max_tokens": 5, "seed": 0, "engrave": False, "engrave_timeout": 30, "name": "tiny_modern",
            "label": "tiny"}


@dataclass
class Case:
    """One command line; ``key`` is what the error line must name (a file or a config key) before ``: ``."""

    command: str
    args: list[str]
    key: str
    reason: str  # a regular expression the rest of the line must contain
    outputs: list[Path]
    before: list[list[str]] = field(default_factory=list)  # commands run first (e.g. training a model)
    skip: str | None = None


def _rnnmem(args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RNNMEM_DEBUG"}
    return subprocess.run([sys.executable, "-m", "rnnmem", *args], capture_output=True, text=True,
                          env={**env, "RNNMEM_DEVICE": "cpu"}, timeout=300)


def _run_case(case: Case) -> subprocess.CompletedProcess:
    for args in case.before:
        done = _rnnmem(args)
        if done.returncode != 0:
            return done
    return _rnnmem([case.command, *case.args])


def _lm_train_checkpoint_option() -> str:
    """The lm-train option that names where checkpoints go (``--checkpoint`` or, renamed, ``--checkpoint-dir``)."""
    from rnnmem.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {o for action in sub.choices["lm-train"]._actions for o in action.option_strings}
    return "--checkpoint-dir" if "--checkpoint-dir" in options else "--checkpoint"


def _token_files(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for number in range(1, 13):
        split = "train" if number <= 8 else "valid" if number <= 10 else "test"
        tokens = ["<s>", *(VOCAB[3 + (number + i) % 4] for i in range(6)), "</s>"]
        rows.append({"number": number, "bwv": str(number), "split": split, "tokens": tokens,
                     "ids": [VOCAB.index(t) for t in tokens]})
    tokens_path, vocab_path = folder / "tokens.jsonl", folder / "vocab.json"
    tokens_path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    vocab_path.write_text(json.dumps(VOCAB), encoding="utf-8")
    return tokens_path, vocab_path


def _mount_read_only(folder: Path) -> str | None:
    """Make ``folder`` read-only for this process; the reason it cannot be, or None."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return None
    if shutil.which("mount") is None:
        return "running as root (permissions are ignored) and no mount command for a read-only tmpfs"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"running as root (permissions are ignored) and a read-only tmpfs cannot be mounted: {done.stderr}"
    return None


def _unmount(folder: Path) -> None:
    if os.path.ismount(folder):
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
    else:
        folder.chmod(0o755)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Case, subprocess.CompletedProcess]]]:
    tmp = tmp_path_factory.mktemp("errors")
    out = tmp / "out"
    out.mkdir()
    bad_table = tmp / "bad_part.csv"
    bad_table.write_text("not,a,table\n1,2,3\n", encoding="utf-8")
    missing = tmp / "missing_part.csv"
    tokens, vocab = _token_files(tmp / "data")
    bad_tokens = tmp / "bad_tokens.jsonl"
    bad_tokens.write_text('{"number": 1, "split": "train"}\n', encoding="utf-8")
    transposed, skipped = tmp / "transposed.jsonl", tmp / "skipped.csv"
    transposed.write_text("", encoding="utf-8")
    skipped.write_text("number,file,reason\n", encoding="utf-8")
    read_only = tmp / "read_only"
    read_only.mkdir()
    read_only_skip = _mount_read_only(read_only)
    model = tmp / "lm" / "tiny_modern.pt"
    train = ["lm-train", "--params", json.dumps({"model": LM_MODEL, "regime": "modern", "settings": LM_SETTINGS,
                                                 "seed": 0, "source": "music21"}),
             "--tokens", str(tokens), "--vocab", str(vocab), _lm_train_checkpoint_option(), str(tmp / "lm" / "ckpt"),
             "--model", str(model), "--curve", str(tmp / "lm" / "curve.csv")]
    dlk_out = out / "dlk.csv"
    merge = ["--out", str(out / "merged.csv")]
    cases = {
        "bad_input_file": Case("dlk-merge", ["--parts", str(bad_table), *merge], str(bad_table),
                               r"lacks the columns", [out / "merged.csv"]),
        "bad_params_value": Case("dlk", ["--params", json.dumps({**DLK_PARAMS, "k": 0}), "--out", str(dlk_out)],
                                 "memory.dlk.k", r"must be an integer >= 1, got 0", [dlk_out]),
        "params_not_json": Case("dlk", ["--params", "{model: vanilla", "--out", str(dlk_out)], "--params",
                                r"not valid JSON", [dlk_out]),
        "missing_input": Case("dlk-merge", ["--parts", str(missing), *merge], str(missing),
                              r"No such file or directory", [out / "merged.csv"]),
        "read_only_folder": Case("dlk", ["--params", json.dumps(DLK_PARAMS), "--out", str(read_only / "dlk.csv")],
                                 str(read_only / "dlk.csv"), r"Read-only file system|Permission denied",
                                 [read_only / "dlk.csv"], skip=read_only_skip),
        "token_data": Case("lm-ngram", ["--params", json.dumps({"orders": [1, 2], "seed": 0, "source": "music21"}),
                                        "--tokens", str(bad_tokens), "--vocab", str(vocab), "--out",
                                        str(out / "ngram.csv"), "--orders", str(out / "orders.csv")],
                           f"{bad_tokens}:1", r"not a chorale record", [out / "ngram.csv", out / "orders.csv"]),
        "dataset_split": Case("chorales-dataset",
                              ["--params", json.dumps({"split": {"seed": 0, "valid": 0.5, "test": 0.5,
                                                                 "similarity": 0.7}}),
                               "--transposed", str(transposed), "--skipped", str(skipped), "--out-dir",
                               str(out / "dataset")],
                              "chorales.split", r"sum to less than 1", [out / "dataset"]),
        "sampling": Case("lm-samples", ["--params", json.dumps({**SAMPLING, "temperatures": [-1.0]}), "--vocab",
                                        str(vocab), "--model", str(model), "--out-dir", str(out / "samples"),
                                        "--listing", str(out / "samples" / "listing.csv")],
                         "lm.sampling.temperatures", r"not a temperature >= 0", [out / "samples" / "listing.csv"],
                         before=[train]),
    }
    todo = {name: case for name, case in cases.items() if case.skip is None}
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(_run_case, case) for name, case in todo.items()}
            results = {name: future.result() for name, future in futures.items()}
    finally:
        _unmount(read_only)
    yield {name: (case, results.get(name)) for name, case in cases.items()}


def _leftovers(paths: list[Path]) -> list[str]:
    """Outputs that exist, and hidden temporary files (``.<name>.*.tmp*``) beside them."""
    found = [str(p) for p in paths if p.exists()]
    for folder in {p.parent for p in paths}:
        if folder.is_dir():
            found += [str(p) for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    return found


ONE_LINE = ["bad_input_file", "bad_params_value", "params_not_json", "missing_input", "read_only_folder",
            "token_data", "dataset_split", "sampling"]


@pytest.mark.parametrize("name", ONE_LINE)
def test_anticipated_error_is_one_line(runs, name: str) -> None:
    case, done = runs[name]
    if case.skip:
        pytest.skip(case.skip)
    assert done.returncode != 0, (name, done.stdout[-2000:])
    assert "Traceback" not in done.stderr, (name, done.stderr[-4000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, (name, done.stderr[-4000:])
    prefix = f"rnnmem {case.command}: error: {case.key}: "
    assert lines[0].startswith(prefix), (name, lines[0], prefix)
    assert re.search(case.reason, lines[0][len(prefix):]), (name, lines[0])
    assert not _leftovers(case.outputs), (name, _leftovers(case.outputs))


# The switches and the bug case run in this process (the command line's main), the subprocess cost being in imports.

@pytest.mark.parametrize("switch", ["--debug", "RNNMEM_DEBUG=1"])
def test_debug_shows_the_traceback(tmp_path: Path, capsys, monkeypatch, switch: str) -> None:
    from rnnmem.cli import main

    bad = tmp_path / "bad_part.csv"
    bad.write_text("not,a,table\n1,2,3\n", encoding="utf-8")
    out = tmp_path / "merged.csv"
    monkeypatch.delenv("RNNMEM_DEBUG", raising=False)
    argv = ["dlk-merge", "--parts", str(bad), "--out", str(out)]
    if switch == "--debug":
        argv.insert(0, "--debug")
    else:
        monkeypatch.setenv("RNNMEM_DEBUG", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "InputFileError" in err, err
    assert err.strip().splitlines()[-1] == f"rnnmem dlk-merge: error: {bad}: lacks the columns {DLK_COLUMNS}", err
    assert not _leftovers([out])
    monkeypatch.delenv("RNNMEM_DEBUG", raising=False)
    assert main(argv[-5:]) == 1  # without the switch: the line alone
    assert capsys.readouterr().err.strip().splitlines() == [err.strip().splitlines()[-1]]


def test_unexpected_exception_keeps_its_traceback(tmp_path: Path, monkeypatch) -> None:
    """A bug (here: parameters a rule would never pass) is not turned into a message."""
    from rnnmem.cli import main

    monkeypatch.delenv("RNNMEM_DEBUG", raising=False)
    with pytest.raises(KeyError):
        main(["dlk", "--params", "{}", "--out", str(tmp_path / "dlk.csv")])


def test_split_leaving_a_split_empty_names_the_key() -> None:
    """Fractions fine on paper, but whole tune groups leave the test split empty: the dataset job says so."""
    from rnnmem.chorales.dataset import check_splits_filled
    from rnnmem.chorales.events import ChoraleError

    with pytest.raises(ChoraleError, match=r"^chorales\.split: the test split is empty \(3 chorales in 1 tune"):
        check_splits_filled({"train": [1, 2, 3], "valid": [], "test": []}, [[1, 2, 3]], valid=0.0, test=0.2)
