"""Chorale tokens, tune groups, splits, vocabulary, the written data set, and source agreement (hand-made chorales)."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from fractions import Fraction

import pandas as pd
import pytest

from rnnmem.chorales import dataset as ds
from rnnmem.chorales.agreement import agreement_summary, compare_sources
from rnnmem.chorales.events import Chorale, ChoraleError, Event, figure20_text, transpose_to_c

TOKEN = re.compile(r"^(?P<pitch>[a-g](?:isis|eses|is|es)?[',]*|r)(?P<base>\d+)(?P<dots>\.*)(?P<tie>~?)$")


def events(text: str) -> list[Event]:
    """``"c'4 d'8 | e'2~ e'4 \\ r4"`` -> events; ``\\`` puts a fermata on the event before it."""
    result: list[Event] = []
    for token in text.split():
        if token == "|":
            result.append(Event("bar"))
        elif token == "\\":
            result[-1] = replace(result[-1], fermata=True)
        else:
            match = TOKEN.match(token)
            assert match, token
            base = Fraction(1, int(match["base"]))
            duration = base * (2 - Fraction(1, 2 ** len(match["dots"])))
            if match["pitch"] == "r":
                result.append(Event("rest", duration=duration))
            else:
                result.append(Event("note", match["pitch"], duration, tie=bool(match["tie"])))
    return result


def chorale(number: int, text: str, title: str = "Ein Lied", mode: str = "major", bwv: str | None = None,
            tonic: str = "c", transposed: bool = True) -> Chorale:
    made = Chorale(number=number, bwv=f"{number}.1" if bwv is None else bwv, title=title, source="hand",
                   time_signatures=["4/4"], key_tonic=tonic, mode=mode, events=events(text))
    return transpose_to_c(made) if transposed else made


SCALE = ["c'", "d'", "e'", "f'", "g'", "a'", "b'", "c''"]


def melody(seed: int, length: int = 32) -> list[str]:
    """A random stepwise diatonic melody (pitches only), reproducible from the seed."""
    rng = random.Random(seed)
    index, pitches = 4, []
    for _ in range(length):
        index = min(len(SCALE) - 1, max(0, index + rng.choice([-2, -1, -1, 1, 1, 2, 0])))
        pitches.append(SCALE[index])
    return pitches


def melody_text(pitches: list[str]) -> str:
    """Quarter notes, four to a bar."""
    parts = []
    for i, p in enumerate(pitches):
        if i and i % 4 == 0:
            parts.append("|")
        parts.append(f"{p}4")
    return " ".join(parts)


# --- tokens ---------------------------------------------------------------------------------------------------------

def test_markers_and_tokens() -> None:
    assert (ds.BEGIN, ds.END, ds.UNK) == ("<s>", "</s>", "<unk>")
    c = chorale(1, "g'4 | e'4. d'8 c'2~ | c'4 r4 g'2 \\ |")
    tokens = ds.chorale_tokens(c)
    assert tokens == ["<s>", "g'4", "|", "e'4.", "d'8", "c'2~", "|", "c'4", "r4", "g'2", "\\", "|", "</s>"]
    assert figure20_text(c) == "g'4 | e'4. d'8 c'2~ | c'4 r4 g'2 \\ |"


def test_melody_key_merges_ties_and_ignores_rests_bars_durations() -> None:
    a = chorale(1, "c'4 d'2~ | d'4 r4 e'8 e'8 f'2 \\")
    b = chorale(2, "c'2 d'2. e'4 e'4 | f'1")
    assert ds.melody_key(a) == ("c'", "d'", "e'", "e'", "f'") == ds.melody_key(b)
    assert ds.merged_notes(a)[1] == ("d'", Fraction(3, 4), False)
    assert ds.merged_notes(a)[-1] == ("f'", Fraction(1, 2), True)


def test_melody_key_is_transposed() -> None:
    in_g = chorale(1, "g'4 a'4 b'4 | g'2", tonic="g")
    assert ds.melody_key(in_g) == ("c'", "d'", "e'", "c'")


def test_levenshtein_matches_textbook_dp() -> None:
    def reference(a, b):
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, y in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
        return row[-1]

    rng = random.Random(7)
    for _ in range(400):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 70))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 70))]
        assert ds.levenshtein(a, b) == reference(a, b)
    assert ds.levenshtein(("c'", "d'"), ("c'", "e'", "d'")) == 1


def test_drop_repeat() -> None:
    a, b = melody(1, 12), melody(2, 20)
    assert ds.drop_repeat(tuple(a + a + b)) == tuple(a + b)
    assert ds.drop_repeat(tuple(a + b)) is None


def test_title_key() -> None:
    assert ds.title_key("Nun lob’, mein’ Seel’, den Herren") == "nun lob mein seel"
    assert ds.title_key("Wer weiß, wie nahe mir") == ds.title_key("Wer weiss wie nahe mir mein Ende")


# --- tune groups ----------------------------------------------------------------------------------------------------

def tune_family() -> list[Chorale]:
    tune, other = melody(1), melody(2)
    variant = list(tune)
    variant[10] = "a'" if variant[10] != "a'" else "g'"  # one changed passing note
    variant.insert(20, variant[19])  # and one added
    shifted = ["d'", "e'", "fis'", "g'", "a'", "b'", "cis''", "d''"]
    in_d = [shifted[SCALE.index(p)] for p in tune]  # the tune in D, but declared in C (so not moved to C)
    a, b = melody(3, 16), melody(4, 16)
    return [
        chorale(3, melody_text(tune), title="Erstes Lied"),
        chorale(5, melody_text(variant), title="Anderer Text"),
        chorale(7, melody_text(other), title="Zweites Lied"),
        chorale(9, melody_text(in_d), title="Dritter Text"),
        chorale(11, melody_text(a + b), title="Viertes Lied mit Reprise"),
        chorale(12, melody_text(a + a + b), title="Anderer Text mit Reprise"),  # the repeat written out
        chorale(13, melody_text(tune), title="Erstes Lied"),  # identical melody_key
    ]


def test_tune_groups_join_variants_and_separate_other_tunes() -> None:
    chorales = tune_family()
    groups = ds.tune_groups(chorales)
    assert groups == [[3, 5, 9, 13], [7], [11, 12]]
    assert ds.tune_groups(list(reversed(chorales))) == groups  # order does not matter


def test_tune_groups_title_rule_needs_some_melodic_evidence() -> None:
    tune, other = melody(1), melody(2)
    assert ds.tune_groups([chorale(1, melody_text(tune), title="Gleicher Titel"),
                           chorale(2, melody_text(other), title="Gleicher Titel")]) == [[1], [2]]


def test_tune_groups_refuses_duplicate_numbers() -> None:
    c = chorale(1, "c'4 d'4")
    with pytest.raises(ChoraleError):
        ds.tune_groups([c, c])


# --- splits and vocabulary ------------------------------------------------------------------------------------------

def many_groups() -> list[list[int]]:
    rng = random.Random(3)
    groups, number = [], 1
    for _ in range(120):
        size = rng.choice([1, 1, 1, 1, 2, 2, 3, 5])
        groups.append(list(range(number, number + size)))
        number += size
    return groups


def test_split_groups_keeps_groups_whole_and_respects_fractions() -> None:
    groups = many_groups()
    total = sum(map(len, groups))
    splits = ds.split_groups(groups, seed=0, valid=0.1, test=0.15)
    assert set(splits) == {"train", "valid", "test"}
    everything = splits["train"] + splits["valid"] + splits["test"]
    assert sorted(everything) == sorted(n for g in groups for n in g)  # each chorale exactly once
    for numbers in splits.values():
        assert numbers == sorted(numbers)
    where = {n: name for name, numbers in splits.items() for n in numbers}
    for group in groups:
        assert len({where[n] for n in group}) == 1
    assert abs(len(splits["test"]) - 0.15 * total) <= 3
    assert abs(len(splits["valid"]) - 0.1 * total) <= 3


def test_split_groups_deterministic_per_seed() -> None:
    groups = many_groups()
    assert ds.split_groups(groups, 5, 0.1, 0.1) == ds.split_groups(groups, 5, 0.1, 0.1)
    assert ds.split_groups(groups, 5, 0.1, 0.1) != ds.split_groups(groups, 6, 0.1, 0.1)


def test_split_groups_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError):
        ds.split_groups([[1]], 0, 0.5, 0.5)


def test_vocab_from_training_tokens_and_unknowns() -> None:
    train = [["<s>", "c'4", "d'4", "c'4", "|", "</s>"], ["<s>", "d'4", "c'4", "e'2", "</s>"]]
    vocab = ds.build_vocab(train)
    assert vocab == ["<unk>", "<s>", "</s>", "c'4", "d'4", "e'2", "|"]
    index = {t: i for i, t in enumerate(vocab)}
    ids, unknown = ds.encode(["<s>", "c'4", "fis'4", "|", "g'8", "</s>"], index)
    assert ids == [1, 3, 0, 6, 0, 2]
    assert unknown == 2


# --- the written data set -------------------------------------------------------------------------------------------

def dataset_chorales() -> list[Chorale]:
    chorales = []
    for number in range(1, 21):
        pitches = melody(100 + number, 16)
        text = melody_text(pitches) + " \\"
        if number == 20:
            text += " cis'4"  # a token absent from the other chorales
        chorales.append(chorale(number, text, title=f"Lied {number}", mode="minor" if number % 3 == 0 else "major",
                                bwv=f"{number}.6" if number != 2 else "248/12-2"))
    chorales.append(chorale(21, "c'4 d'4 e'4 d'4 | c'1 \\", mode="dorian", bwv="bwv 300"))
    return chorales


def test_text_file_name() -> None:
    assert ds.text_file_name(chorale(86, "c'4", bwv="86.6")) == "086_bwv86.6.txt"
    assert ds.text_file_name(chorale(10, "c'4", bwv="248/12-2")) == "010_bwv248-12-2.txt"
    assert ds.text_file_name(chorale(5, "c'4", bwv="BWV 300")) == "005_bwv300.txt"
    assert ds.text_file_name(chorale(5, "c'4", bwv="")) == "005_bwvunknown.txt"


def test_write_dataset_writes_every_file(tmp_path) -> None:
    chorales = dataset_chorales()
    out = tmp_path / "data"
    (out / "text").mkdir(parents=True)
    (out / "text" / "999_bwvstale.txt").write_text("old\n")
    ds.write_dataset(chorales, out, seed=1, valid=0.2, test=0.2, skipped_count=3)

    texts = sorted(p.name for p in (out / "text").iterdir())
    assert texts == sorted(ds.text_file_name(c) for c in chorales)
    first = chorales[0]
    assert (out / "text" / ds.text_file_name(first)).read_text() == figure20_text(first) + "\n"
    assert "\n" not in figure20_text(first)

    records = [json.loads(line) for line in (out / "tokens.jsonl").read_text().splitlines()]
    vocab = json.loads((out / "vocab.json").read_text())
    splits = json.loads((out / "splits.json").read_text())
    assert [r["number"] for r in records] == [c.number for c in chorales]
    assert vocab[:3] == ["<unk>", "<s>", "</s>"]
    train_tokens = {t for r in records if r["split"] == "train" for t in r["tokens"]}
    assert set(vocab) == train_tokens | {"<unk>"}
    unknown = {"train": 0, "valid": 0, "test": 0}
    for record in records:
        assert record["number"] in splits[record["split"]]
        assert record["tokens"] == ds.chorale_tokens(next(c for c in chorales if c.number == record["number"]))
        for token, i in zip(record["tokens"], record["ids"], strict=True):
            assert vocab[i] == (token if token in vocab else "<unk>")
            unknown[record["split"]] += token not in vocab
    assert unknown["train"] == 0
    assert sorted(splits["train"] + splits["valid"] + splits["test"]) == list(range(1, 22))
    assert sorted(n for g in splits["groups"] for n in g) == list(range(1, 22))

    stats = pd.read_csv(out / "stats.csv")
    assert list(stats.columns) == ["split", "quantity", "value"]
    value = {(row.split, row.quantity): row.value for row in stats.itertuples()}
    assert value[("all", "chorales")] == 21
    assert value[("all", "skipped_files")] == 3
    assert value[("all", "vocabulary")] == len(vocab)
    assert value[("all", "chorales_modal")] == 1
    assert value[("all", "chorales_minor")] == 6
    assert value[("all", "notes")] == sum(len(c.notes) for c in chorales)
    for split in ("train", "valid", "test"):
        assert value[(split, "chorales")] == len(splits[split])
        assert value[(split, "unknown_tokens")] == unknown[split]
    assert value[("all", "unknown_tokens")] == sum(unknown.values())


def test_write_dataset_refuses_untransposed(tmp_path) -> None:
    c = chorale(1, "g'4 a'4", tonic="g", transposed=False)
    with pytest.raises(ChoraleError, match="not transposed"):
        ds.write_dataset([c], tmp_path, seed=0, valid=0.1, test=0.1, skipped_count=0)


def test_dataset_stats_small() -> None:
    chorales = [chorale(1, "c'4 d'4 | e'2"), chorale(2, "c'2 r2", mode="minor")]
    tokens = {c.number: ds.chorale_tokens(c) for c in chorales}
    frame = ds.dataset_stats(chorales, {"train": [1], "valid": [2], "test": []}, tokens, ["<unk>"],
                             {"train": 0, "valid": 1, "test": 0}, 4)
    value = {(row.split, row.quantity): row.value for row in frame.itertuples()}
    assert value[("train", "tokens")] == 6 and value[("valid", "tokens")] == 4
    assert value[("all", "notes")] == 4 and value[("test", "chorales")] == 0
    assert value[("valid", "chorales_minor")] == 1 and value[("all", "tune_groups")] == 2
    assert value[("all", "unknown_tokens")] == 1
    as_list = ds.dataset_stats(chorales, {"train": [1], "valid": [2], "test": []}, list(tokens.values()), ["<unk>"],
                               {"train": 0, "valid": 1, "test": 0}, 4)
    pd.testing.assert_frame_equal(as_list, frame)


# --- agreement between sources --------------------------------------------------------------------------------------

def test_agreement_identical_and_one_changed_duration() -> None:
    a = [chorale(1, "c'4 d'4 | e'4 f'4 | g'2 \\", bwv="1.1"), chorale(2, "c'4 d'4 e'2"), chorale(3, "c'1")]
    b = [chorale(1, "c'4 d'4 | e'4 f'4 | g'2 \\", bwv="1.1"), chorale(2, "c'4 d'4 e'4"), chorale(4, "c'1")]
    table = compare_sources(a, b)
    assert list(table.columns) == ["number", "bwv_a", "bwv_b", "key_a", "key_b", "identical",
                                   "same_up_to_transposition", "edit_distance", "notes_a", "notes_b",
                                   "first_difference"]
    assert table["number"].tolist() == [1, 2]
    one, two = table.iloc[0], table.iloc[1]
    assert bool(one["identical"]) and one["edit_distance"] == 0 and one["first_difference"] == ""
    assert not bool(two["identical"]) and two["edit_distance"] == 1
    assert two["first_difference"] == "note 3: e'2 vs e'4"
    assert agreement_summary(table) == {"count": 2, "identical": 1, "rate": 0.5, "same_up_to_transposition": 1,
                                        "rate_up_to_transposition": 0.5}


def test_agreement_merges_ties_ignores_bars_rests_and_transposes() -> None:
    a = [chorale(1, "g'2~ | g'4 a'4 r4 b'4 \\", tonic="g", transposed=False)]
    b = [chorale(1, "c'2. d'4 | r2 e'4 \\")]
    table = compare_sources(a, b)
    assert bool(table.iloc[0]["identical"]) and table.iloc[0]["edit_distance"] == 0
    assert table.iloc[0]["notes_a"] == 3


def test_agreement_reports_missing_notes_and_fermatas() -> None:
    a = [chorale(1, "c'4 d'4 e'2 \\"), chorale(2, "c'4 d'4 e'4 f'4")]
    b = [chorale(1, "c'4 d'4 e'2"), chorale(2, "c'4 d'4 e'4")]
    table = compare_sources(a, b)
    assert table.iloc[0]["first_difference"] == "note 3: e'2\\fermata vs e'2"
    assert table.iloc[1]["first_difference"] == "note 4: f'4 vs end" and table.iloc[1]["edit_distance"] == 1
    assert agreement_summary(compare_sources([], [])) == {"count": 0, "identical": 0, "rate": 0.0,
                                                          "same_up_to_transposition": 0,
                                                          "rate_up_to_transposition": 0.0}


def test_agreement_tells_a_tonic_convention_from_a_different_melody() -> None:
    a = [chorale(1, "e'4 f'4 g'2 \\"), chorale(2, "e'4 f'4 g'2")]
    b = [chorale(1, "c'4 des'4 ees'2 \\"), chorale(2, "c'4 d'4 e'2")]
    table = compare_sources(a, b)
    assert not table["identical"].any()
    assert table["same_up_to_transposition"].tolist() == [True, False]
