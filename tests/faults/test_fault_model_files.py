"""Fault suite: damaged model files and foreign vocabularies (issue 10, item 3).

A flipped bit anywhere in a Reber ensemble ``.pt``, a language-model ``.pt`` or a training ``.ckpt`` either makes
the loader refuse the file with its one-line error naming the file, or loads exactly the same tensors and values
(a bit nobody reads: a time stamp, alignment padding). A ``vocab.json`` other than the one a language model was
trained with (a token renamed, two swapped, one missing, one more) is refused by ``lm-score`` and ``lm-samples``
with one line naming both files and the first differing token, and nothing is written.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from regimes import LM_BLOCKS

from rnnmem.core.cells import SequencePredictor
from rnnmem.core.errors import ConfigError
from rnnmem.lm import jobs as lm_jobs
from rnnmem.lm.train import CheckpointError, VocabularyMismatchError, load_checkpoint, load_trained
from rnnmem.reber.ensembles import ModelFileError, load_ensemble, save_ensemble

VOCAB = ["<unk>", "<s>", "</s>", "|", "\\", "c'4", "d'4", "e'4", "f'8", "g'2", "r4", "a'4."]
SPEC = {"model": "gru", "input_size": 7, "hidden": 3, "output_size": 7, "seeds": [0, 1], "activation": "logistic"}
LM_PARAMS = {
    "model": {"name": "vanilla_f", "model": "vanilla", "size": "report", "hidden": 4},
    "regime": "modern",
    "settings": {**LM_BLOCKS["modern"], "embedding": 4, "dropout": 0.1, "batch_size": 4, "patience": 2,
                 "checkpoint_every": 2, "max_epochs": 2},
    "seed": 0, "source": "music21",
}
SAMPLE_PARAMS = {"temperatures": [1.0], "count": 2, "max_tokens": 20, "seed": 0, "engrave": False,
                 "engrave_timeout": 30, "name": "vanilla_f_modern", "label": "vanilla (report, modern)"}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest.one_torch_thread)."""


def _write_token_files(folder: Path) -> tuple[Path, Path]:
    """tokens.jsonl and vocab.json of 12 training, 4 validation and 4 test melodies."""
    rng = np.random.default_rng(0)
    lines = []
    for number in range(1, 21):
        ids, note = [1], int(rng.integers(5, 10))
        for position in range(int(rng.integers(6, 14))):
            note = 5 + (note - 5 + int(rng.choice([-1, 1, 1]))) % 5
            ids.append(3 if position % 3 == 2 else note)
        ids.append(2)
        split = "train" if number <= 12 else "valid" if number <= 16 else "test"
        lines.append(json.dumps({"number": number, "bwv": str(number), "split": split, "ids": ids,
                                 "tokens": [VOCAB[i] for i in ids]}))
    tokens, vocab = folder / "tokens.jsonl", folder / "vocab.json"
    tokens.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab.write_text(json.dumps(VOCAB), encoding="utf-8")
    return tokens, vocab


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny language model trained by the lm-train job (in this process), with its checkpoint and data."""
    folder = tmp_path_factory.mktemp("lm")
    tokens, vocab = _write_token_files(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lm_jobs.lm_train(LM_PARAMS, tokens, vocab, folder / "checkpoints" / "vanilla_f_modern",
                         folder / "model.pt", folder / "curve.csv")
    finally:
        torch.set_num_threads(threads)
    (checkpoint,) = (folder / "checkpoints" / "vanilla_f_modern").iterdir()
    return {"tokens": tokens, "vocab": vocab, "model": folder / "model.pt", "checkpoint": checkpoint}


def _ensemble(folder: Path) -> tuple[Path, Path]:
    model = SequencePredictor(SPEC["model"], SPEC["input_size"], SPEC["hidden"], SPEC["output_size"],
                              members=len(SPEC["seeds"]), activation=SPEC["activation"])
    model.reset_parameters("normal", SPEC["seeds"])
    weights, spec = folder / "ens.pt", folder / "ens.json"
    save_ensemble(model, SPEC, weights, spec)
    return weights, spec


# --- bit flips -----------------------------------------------------------------------------------------------


def _member_data(data: bytes) -> list[tuple[str, int, int]]:
    """(name, start, end) of every member's data in a torch zip file."""
    spans = []
    for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
        name_length, extra_length = struct.unpack_from("<2H", data, info.header_offset + 26)
        start = info.header_offset + 30 + name_length + extra_length
        spans.append((info.filename, start, start + info.compress_size))
    return spans


def _flips(data: bytes) -> list[tuple[int, int]]:
    """(byte, bit) positions to try. Every bit of the end records; inside each member's data its first, middle and
    last byte (a CRC-32 catches every single-bit error there); one bit each of 300 bytes drawn (seeded) from the
    rest: local headers, alignment padding, data descriptors, central directory. ``RNNMEM_FULL_FLIPS=1`` tries
    every bit of the central directory and one bit of every other byte outside the data instead (minutes)."""
    spans = _member_data(data)
    inside = np.zeros(len(data), dtype=bool)
    for _, start, end in spans:
        inside[start:end] = True
    directory = max(end for _, _, end in spans) + 16  # after the last member and its data descriptor
    records = len(data) - 98  # zip64 end record (56), its locator (20), the end record (22)
    assert data[records : records + 4] == b"PK\x06\x06"
    full = os.environ.get("RNNMEM_FULL_FLIPS") == "1"
    flips = [(pos, bit) for pos in range(directory if full else records, len(data)) for bit in range(8)]
    rest = [pos for pos in range(directory if full else records) if not inside[pos]]
    if not full:
        rest = sorted(np.random.default_rng(len(data)).choice(rest, size=min(300, len(rest)), replace=False))
    flips += [(int(pos), int(pos) % 8) for pos in rest]
    for _, start, end in spans:
        if end > start:
            flips += [(pos, (pos * 5) % 8) for pos in sorted({start, (start + end) // 2, end - 1})]
    return flips


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


def _try_every_flip(path: Path, load, error: type[Exception]) -> tuple[int, int, list[str]]:
    """Flip each position of :func:`_flips` in ``path`` (restored afterwards) and load it; returns (refused,
    loaded identical, names of the members whose data had a refused flip). Fails on a silent change."""
    original = path.read_bytes()
    reference = load(path)
    spans = _member_data(original)
    refused = identical = 0
    refused_members = set()
    try:
        for pos, bit in _flips(original):
            damaged = bytearray(original)
            damaged[pos] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            try:
                loaded = load(path)
            except error as exc:
                message = str(exc)
                assert message.startswith(f"{path}: ") and "\n" not in message, message
                refused += 1
                refused_members.update(name for name, start, end in spans if start <= pos < end)
                continue
            assert _same(reference, loaded), f"bit {bit} of byte {pos} changed what {path.name} loads"
            identical += 1
    finally:
        path.write_bytes(original)
    return refused, identical, sorted(refused_members)


def _ensemble_state(weights: Path, spec: Path):
    model, _ = load_ensemble(weights, spec)
    return model.state_dict()


def test_flipped_bits_in_a_reber_ensemble_are_refused_or_harmless(tmp_path):
    weights, spec = _ensemble(tmp_path)
    refused, identical, members = _try_every_flip(weights, lambda p: _ensemble_state(p, spec), ModelFileError)
    assert refused > identical > 0
    assert any("/data/" in name for name in members) and any(name.endswith("data.pkl") for name in members)


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_flipped_bits_in_a_language_model_file_are_refused_or_harmless(trained, tmp_path, kind):
    path = tmp_path / trained[kind].name
    path.write_bytes(trained[kind].read_bytes())
    refused, identical, members = _try_every_flip(path, load_checkpoint, CheckpointError)
    assert refused > identical > 0
    assert any("/data/" in name for name in members) and any(name.endswith("data.pkl") for name in members)


def test_the_directory_attribute_is_refused(trained, tmp_path):
    """torch's reader takes a member whose DOS directory bit is set for a folder and reads no data from it: a
    tensor would load as uninitialized memory. That bit lies outside every CRC."""
    data = bytearray(trained["model"].read_bytes())
    central = max(end for _, _, end in _member_data(bytes(data))) + 16  # the first central directory entry
    while True:
        assert data[central : central + 4] == b"PK\x01\x02"
        name_length, extra_length, comment_length = struct.unpack_from("<3H", data, central + 28)
        if b"/data/" in data[central + 46 : central + 46 + name_length]:
            break
        central += 46 + name_length + extra_length + comment_length
    data[central + 38] |= 0x10  # external attributes: MS-DOS directory
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: ") + ".*attributes"):
        load_checkpoint(path)


# --- through the command line ----------------------------------------------------------------------------------


def _rnnmem(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnnmem", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _assert_one_line_error(process: subprocess.Popen, command: str, path: Path, *fragments: str) -> str:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"rnnmem {command}: error: {path}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _flip_in_tensor_data(source: Path, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    _, start, end = next(s for s in _member_data(bytes(data)) if "/data/" in s[0] and s[2] - s[1] >= 16)
    data[(start + end) // 2] ^= 0x04
    target.write_bytes(bytes(data))
    return target


VOCABULARIES = {
    "renamed": ([*VOCAB[:6], "dis'4", *VOCAB[7:]], "token 6 is \"dis'4\" here, \"d'4\" in the model"),
    "swapped": ([*VOCAB[:5], VOCAB[6], VOCAB[5], *VOCAB[7:]], "token 5 is \"d'4\" here, \"c'4\" in the model"),
    "short": (VOCAB[:-1], "11 tokens here, 12 in the model (token 11, \"a'4.\", is missing here)"),
}


def test_command_line_refuses_foreign_vocabularies(trained, tmp_path):
    """Every case as a `python -m rnnmem` subprocess (started together: each spends its time importing torch):
    non-zero exit, one line on stderr naming the vocabulary and the model file, no output written."""
    runs = []
    for case, (tokens, fragment) in VOCABULARIES.items():
        vocab = tmp_path / case / "vocab.json"
        vocab.parent.mkdir()
        vocab.write_text(json.dumps(tokens), encoding="utf-8")
        both = (f"not the vocabulary {trained['model']} was trained with", fragment)
        out = tmp_path / case / "score.csv"
        runs.append((_rnnmem("lm-score", "--params", json.dumps(LM_PARAMS), "--tokens", str(trained["tokens"]),
                             "--vocab", str(vocab), "--model", str(trained["model"]), "--out", str(out)),
                     "lm-score", vocab, both, [out]))
        samples, listing = tmp_path / case / "samples", tmp_path / case / "samples.csv"
        runs.append((_rnnmem("lm-samples", "--params", json.dumps(SAMPLE_PARAMS), "--vocab", str(vocab),
                             "--model", str(trained["model"]), "--out-dir", str(samples), "--listing",
                             str(listing)),
                     "lm-samples", vocab, both, [samples, listing]))
    for process, command, path, fragments, outputs in runs:
        _assert_one_line_error(process, command, path, *fragments)
        assert not [p for p in outputs if p.exists()], outputs


def test_longer_vocabulary_is_refused(trained, tmp_path):
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps([*VOCAB, "b'4"]), encoding="utf-8")
    with pytest.raises(VocabularyMismatchError) as info:
        load_trained(trained["model"], "cpu", vocab_path=vocab)
    assert str(info.value) == (f"{vocab}: not the vocabulary {trained['model']} was trained with: 13 tokens here, "
                               "12 in the model (token 12, \"b'4\", is not in the model)")


def test_damaged_model_is_refused_by_scoring_with_its_name(trained, tmp_path):
    model = _flip_in_tensor_data(trained["model"], tmp_path / "model.pt")
    out = tmp_path / "score.csv"
    with pytest.raises(CheckpointError) as info:
        lm_jobs.lm_score(LM_PARAMS, trained["tokens"], trained["vocab"], model, out)
    assert str(info.value).startswith(f"{model}: damaged or not a language-model checkpoint (checksum mismatch")
    assert "\n" not in str(info.value) and not out.exists()


def test_damaged_checkpoint_stops_training_with_its_name(trained, tmp_path):
    """A flipped bit in the job's own checkpoint: the job stops with the error naming it and writes nothing."""
    folder = tmp_path / "checkpoints" / "vanilla_f_modern"
    folder.mkdir(parents=True)
    checkpoint = _flip_in_tensor_data(trained["checkpoint"], folder / trained["checkpoint"].name)
    model_out, curve_out = tmp_path / "model.pt", tmp_path / "curve.csv"
    with pytest.raises(CheckpointError) as info:
        lm_jobs.lm_train(LM_PARAMS, trained["tokens"], trained["vocab"], folder, model_out, curve_out)
    assert str(info.value).startswith(f"{checkpoint}: damaged or not a language-model checkpoint (checksum mismatch")
    assert "\n" not in str(info.value)
    assert not model_out.exists() and not curve_out.exists()
    assert [p.name for p in folder.iterdir()] == [checkpoint.name]  # left for the user to look at


def test_unchanged_vocabulary_scores_and_samples(trained, tmp_path):
    """The check lets the model's own vocabulary through, and two runs give the same bytes."""
    for run in ("a", "b"):
        lm_jobs.lm_score(LM_PARAMS, trained["tokens"], trained["vocab"], trained["model"], tmp_path / f"{run}.csv")
        lm_jobs.lm_samples(SAMPLE_PARAMS, trained["vocab"], [trained["model"]], tmp_path / f"{run}_samples",
                           tmp_path / f"{run}_samples.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a_samples.csv").read_bytes() == (tmp_path / "b_samples.csv").read_bytes()


@pytest.mark.parametrize(("setting", "message"), [
    ("found", "key_signature 'found' needs --transposed and --tokens"),
    ("sharp", "key_signature must be 'c' or 'found', not 'sharp'"),
])
def test_sample_key_signature_setting_is_checked(trained, tmp_path, setting, message):
    """Engraving in the found key needs the training chorales' profiles; the job says so, names the setting,
    and writes nothing."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        lm_jobs.lm_samples(SAMPLE_PARAMS | {"key_signature": setting}, trained["vocab"], [trained["model"]],
                           tmp_path / "samples", tmp_path / "samples.csv")
    assert not (tmp_path / "samples.csv").exists() and not (tmp_path / "samples").exists()
