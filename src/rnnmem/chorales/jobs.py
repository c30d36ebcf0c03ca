"""What each chorale-data rule runs (report §3.2): fetch, events, data set, source agreement, engraving.

These jobs load music21 and python-ly but none of the training or plotting code of the other branches; same
conventions as every jobs module (plain paths, the rule's JSON ``--params``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnnmem.chorales.agreement import agreement_summary, compare_sources
from rnnmem.chorales.dataset import write_augmented, write_dataset
from rnnmem.chorales.engrave import engrave_png
from rnnmem.chorales.events import ChoraleError, transpose_to_c
from rnnmem.chorales.fetch import fetch_lilypond_scores
from rnnmem.chorales.file_names import file_number
from rnnmem.chorales.lilypond_source import load_lilypond_chorales
from rnnmem.chorales.music21_source import load_music21_chorales
from rnnmem.chorales.store import SKIPPED_COLUMNS, read_chorales, write_chorales, write_skipped
from rnnmem.core.atomic import write_csv
from rnnmem.core.progress import summary
from rnnmem.core.tables import read_table


def chorales_fetch(url: str, archive: Path, scores_dir: Path, listing: Path) -> None:
    """Download the LilyPond archive, verify every original score against the manifest, extract them."""
    table = fetch_lilypond_scores(url, archive, scores_dir)
    write_csv(listing, table)
    summary(f"{len(table)} scores verified and extracted from {url}")


def chorales_events(source: str, params: dict[str, Any], listing: Path | None, events_out: Path,
                    transposed_out: Path, skipped_out: Path, threads: int = 1) -> None:
    """One source's chorales as normalized events, as written and transposed to C, plus the skipped files; the
    files are parsed by ``threads`` processes (the rule's threads)."""
    numbers = params["numbers"] or None
    if source == "music21":
        chorales, skipped = load_music21_chorales(params["repeats"], params["on_bad_file"], numbers, workers=threads)
    else:
        files = [listing.parent / "ly" / name for name in read_table(listing, ["file"])["file"]]
        if numbers is not None:
            wanted = set(numbers)
            files = [path for path in files if file_number(path) in wanted]
        chorales, skipped = load_lilypond_chorales(files, params["repeats"], params["on_bad_file"], workers=threads)
    transposed = [transpose_to_c(chorale) for chorale in chorales]
    write_chorales(events_out, chorales)
    write_chorales(transposed_out, transposed)
    write_skipped(skipped_out, skipped)
    summary(f"{source}: {len(chorales) + len(skipped)} chorales read, {len(chorales)} kept, {len(skipped)} skipped")


def chorales_dataset(params: dict[str, Any], transposed: Path, skipped: Path, out_dir: Path) -> None:
    """Figure-20 texts, tokens, training-split vocabulary, tune-grouped splits and stats."""
    split = params["split"]
    skipped_count = len(read_table(skipped, SKIPPED_COLUMNS, allow_empty=True))
    write_dataset(read_chorales(transposed), out_dir, split["seed"], split["valid"], split["test"],
                  skipped_count=skipped_count, similarity=split["similarity"])
    splits = json.loads((Path(out_dir) / "splits.json").read_text(encoding="utf-8"))
    vocab = json.loads((Path(out_dir) / "vocab.json").read_text(encoding="utf-8"))
    counts = ", ".join(f"{name} {len(splits[name])}" for name in ("train", "valid", "test"))
    summary(f"data set of {counts} chorales, vocabulary of {len(vocab)} tokens, {skipped_count} skipped upstream, "
            f"in {out_dir}")


def chorales_augmented(params: dict[str, Any], tokens: Path, vocab: Path, transposed: Path, out_dir: Path) -> None:
    """The training split plus one transposed copy per shift (the modern regime's data when
    ``lm.regimes.modern.transpose`` is not empty); valid and test are only re-encoded."""
    write_augmented(tokens, vocab, transposed, params["transpose"], out_dir)
    stats = read_table(Path(out_dir) / "stats.csv", ["split", "quantity", "value"])
    value = {(row.split, row.quantity): int(row.value) for row in stats.itertuples()}
    removed = {s: value[(s, "unknown_tokens_base")] - value[(s, "unknown_tokens")] for s in ("valid", "test")}
    summary(f"shifts {params['transpose']}: {value[('train', 'chorales')]} training sequences, vocabulary "
            f"{value[('all', 'vocabulary_base')]} -> {value[('all', 'vocabulary')]} tokens, <unk> tokens removed: "
            f"valid {removed['valid']} of {value[('valid', 'unknown_tokens_base')]}, test {removed['test']} of "
            f"{value[('test', 'unknown_tokens_base')]}, in {out_dir}")


def chorales_agreement(lilypond: Path, music21: Path, out: Path) -> None:
    """Per chorale present in both sources: identical transposed soprano or not, edit distance, first difference."""
    table = compare_sources(read_chorales(lilypond), read_chorales(music21))
    write_csv(out, table)
    result = agreement_summary(table)
    summary(f"{result['count']} chorales in both sources, {result['identical']} identical, "
            f"{result['same_up_to_transposition']} the same up to transposition")


def chorales_score(transposed: Path, number: int, out: Path) -> None:
    """Engrave one transposed soprano with LilyPond (tight PNG)."""
    chorales = {chorale.number: chorale for chorale in read_chorales(transposed)}
    if number not in chorales:
        raise ChoraleError(f"{transposed}: no chorale number {number} (skipped or not selected)")
    chorale = chorales[number]
    title = f"BWV {chorale.bwv} (No. {number}), soprano in C"
    engrave_png(chorale, out, title)
    summary(f"{title}: {len(chorale.events)} events engraved -> {out}")
