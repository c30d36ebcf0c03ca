"""Command line: one sub-command per rule family. Argument parsing only; the work is in each branch's jobs module
(:mod:`rnnmem.reber.jobs`, :mod:`rnnmem.memory.jobs`, :mod:`rnnmem.chorales.jobs`, :mod:`rnnmem.lm.jobs`) and in
:mod:`rnnmem.bench.suite`."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from rnnmem.core.errors import DEBUG_ENV, RnnmemError, debug_requested


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Parser(argparse.ArgumentParser):
    """Usage errors in the pipeline's one-line form: ``rnnmem <command>: error: <argument>: <what is wrong>``."""

    def error(self, message: str) -> NoReturn:
        required = "the following arguments are required: "
        if message.startswith(required):
            message = f"{message[len(required):]}: required (see {self.prog} --help)"
        elif message.startswith("argument "):
            message = message[len("argument "):]
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnmem", description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an anticipated error too (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reber-train", help="train one (experiment, regime) ensemble over seeds")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--model", type=Path, required=True, help="output .pt (weights)")
    p.add_argument("--spec", type=Path, required=True, help="output .json (hyper-parameters)")
    p.add_argument("--table", type=Path, required=True, help="output .csv (one row per seed)")
    p.add_argument("--gradients", type=Path, help="output .csv of |gradient| histograms (default: not logged)")

    p = sub.add_parser("reber-tables", help="success table and summary from the per-run tables")
    p.add_argument("--runs", type=Path, nargs="+", required=True)
    p.add_argument("--success", type=Path, required=True)
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--summary-md", type=Path, required=True)

    p = sub.add_parser("reber-figure", help="report figure 7, 8, 10 or 11 from a trained ensemble")
    p.add_argument("--figure", choices=["fig07", "fig08", "fig10", "fig11"], required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--spec", type=Path, required=True)
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("indistinguishable", help="state differences after BPBTXSE vs BTBTXSE")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--models", type=Path, nargs="+", required=True)
    p.add_argument("--specs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("toy-language", help="the §1.3 warm-up network and its most active outputs")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("gradient-summary", help="figures 12, 13 and tables/gradients.csv")
    p.add_argument("--histograms", type=Path, nargs="+", required=True)
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--fig12", type=Path, required=True)
    p.add_argument("--fig13", type=Path, required=True)
    p.add_argument("--zoom-max", type=float, required=True)

    p = sub.add_parser("gradient-lag", help="gradient norm against the lag, trained and initial weights")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--models", type=Path, nargs="+", required=True)
    p.add_argument("--specs", type=Path, nargs="+", required=True)
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--figure", type=Path, required=True)

    p = sub.add_parser("dlk", help="D(l,k) of one (model, k) for every l")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("dlk-merge", help="one model's D(l,k) table from its per-k parts")
    p.add_argument("--parts", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("dlk-figures", help="figures 14, 15 and the D(l,k) curves")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--tables", type=Path, nargs="+", required=True)
    p.add_argument("--heatmaps", type=Path, nargs="+", required=True)
    p.add_argument("--curves", type=Path, required=True)

    p = sub.add_parser("capacity", help="memory capacity MC(l,k) of ESNs and random GRUs")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--esn", type=Path, required=True)
    p.add_argument("--gru", type=Path, required=True)
    p.add_argument("--totals", type=Path, required=True)

    p = sub.add_parser("capacity-figures", help="figure 16, MC of random GRUs, total MC, D(l,k) beside MC")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--esn", type=Path, required=True)
    p.add_argument("--gru", type=Path, required=True)
    p.add_argument("--totals", type=Path, required=True)
    p.add_argument("--dlk", type=Path, nargs="+", required=True)
    p.add_argument("--fig16", type=Path, required=True)
    p.add_argument("--mc-gru", type=Path, required=True)
    p.add_argument("--mc-total", type=Path, required=True)
    p.add_argument("--dlk-vs-mc", type=Path, required=True)

    p = sub.add_parser("chorales-fetch", help="download, verify and extract the LilyPond chorales")
    p.add_argument("--url", required=True)
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--scores-dir", type=Path, required=True)
    p.add_argument("--listing", type=Path, required=True)

    p = sub.add_parser("chorales-events", help="one source's chorales as events, transposed to C")
    p.add_argument("--source", choices=["music21", "lilypond"], required=True)
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--listing", type=Path, help="extracted LilyPond files (lilypond source)")
    p.add_argument("--events", type=Path, required=True)
    p.add_argument("--transposed", type=Path, required=True)
    p.add_argument("--skipped", type=Path, required=True)

    p = sub.add_parser("chorales-dataset", help="figure-20 texts, tokens, vocabulary, splits, stats")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--transposed", type=Path, required=True)
    p.add_argument("--skipped", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)

    p = sub.add_parser("chorales-agreement", help="compare the two sources chorale by chorale")
    p.add_argument("--lilypond", type=Path, required=True)
    p.add_argument("--music21", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("chorales-score", help="engrave one transposed soprano as a PNG")
    p.add_argument("--transposed", type=Path, required=True)
    p.add_argument("--number", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("lm-train", help="train one chorale language model (resumes from its checkpoint)")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--tokens", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--checkpoint-dir", type=Path, required=True,
                   help="the job's checkpoint folder: one <identity digest>.ckpt per run identity")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--curve", type=Path, required=True)

    p = sub.add_parser("lm-score", help="test-split scores of one trained chorale model")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--tokens", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("lm-ngram", help="Kneser-Ney n-gram baseline, order chosen on the validation split")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--tokens", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--orders", type=Path, required=True)

    p = sub.add_parser("lm-scores", help="chorales/scores.csv from every model's row")
    p.add_argument("--parts", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("lm-samples", help="sample melodies from one model and render them")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--listing", type=Path, required=True)

    p = sub.add_parser("lm-sample-metrics", help="musical and copy metrics of every sample set")
    p.add_argument("--listings", type=Path, nargs="+", required=True)
    p.add_argument("--transposed", type=Path, required=True)
    p.add_argument("--tokens", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--figure", type=Path, required=True)

    p = sub.add_parser("fig21", help="report figure 21: engraved samples one above the other")
    p.add_argument("--params", type=_json, required=True)
    p.add_argument("--sample-dirs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("learning-curves", help="learning curves of every chorale model")
    p.add_argument("--curves", type=Path, nargs="+", required=True)
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--figure", type=Path, required=True)

    p = sub.add_parser("bench", help="training throughput and loop overhead (make bench)")
    p.add_argument("--out-dir", type=Path, default=Path("results/bench"))
    p.add_argument("--repeats", type=int, default=20)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. An anticipated error (:class:`RnnmemError`, or an ``OSError`` naming a file: missing input,
    disk full, read-only folder, no permission) ends it with one line on stderr,
    ``rnnmem <command>: error: <file or key>: <what is wrong>``, and exit status 1; ``--debug`` or
    ``RNNMEM_DEBUG=1`` prints the traceback before that line. Any other exception is a bug: its traceback shows."""
    args = build_parser().parse_args(argv)
    debug = args.debug or debug_requested()
    from rnnmem.core.runtime import configure_torch  # loads torch: after the arguments are known to be usable

    configure_torch(args.threads)
    try:
        return _run(args)
    except RnnmemError as error:
        return _fail(args.command, str(error), debug)
    except OSError as error:
        if error.filename is None:
            raise  # no file to name: not anticipated, keep the traceback
        return _fail(args.command, _os_message(error), debug)


def _os_message(error: OSError) -> str:
    """``<file>: <strerror>`` (``<file> -> <file2>: …`` for a failed rename or copy)."""
    names = str(error.filename) + (f" -> {error.filename2}" if error.filename2 is not None else "")
    return f"{names}: {error.strerror or error}"


def _fail(command: str, message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"rnnmem {command}: error: {_one_line(message)}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    if args.command.startswith("chorales-"):
        return _run_chorales(args)
    # after configure_torch: these import torch-heavy modules
    from rnnmem.memory import jobs as memory_jobs
    from rnnmem.reber import jobs as reber_jobs

    if args.command == "reber-train":
        reber_jobs.reber_train(args.params, args.model, args.spec, args.table, args.gradients)
    elif args.command == "reber-tables":
        reber_jobs.reber_tables(args.runs, args.success, args.summary, args.summary_md)
    elif args.command == "reber-figure":
        reber_jobs.reber_figure(args.figure, args.model, args.spec, args.table, args.out)
    elif args.command in ("indistinguishable", "gradient-lag") and len(args.models) != len(args.specs):
        print(f"rnnmem {args.command}: error: --models, --specs: need the same number of files", file=sys.stderr)
        return 2
    elif args.command == "indistinguishable":
        reber_jobs.indistinguishable(args.params, args.models, args.specs, args.out)
    elif args.command == "gradient-summary":
        memory_jobs.gradient_summary(args.histograms, args.table, args.fig12, args.fig13, args.zoom_max)
    elif args.command == "gradient-lag":
        memory_jobs.gradient_lag(args.params, args.models, args.specs, args.table, args.figure)
    elif args.command == "toy-language":
        reber_jobs.toy_language(args.params, args.out)
    elif args.command == "dlk":
        memory_jobs.dlk(args.params, args.out)
    elif args.command == "dlk-merge":
        memory_jobs.dlk_merge(args.parts, args.out)
    elif args.command == "dlk-figures":
        memory_jobs.dlk_figures(args.params, args.tables, args.heatmaps, args.curves)
    elif args.command == "capacity":
        memory_jobs.capacity(args.params, args.esn, args.gru, args.totals)
    elif args.command == "capacity-figures":
        memory_jobs.capacity_figures(args.params, args.esn, args.gru, args.totals, args.dlk, args.fig16, args.mc_gru,
                              args.mc_total, args.dlk_vs_mc)
    elif args.command.startswith(("lm-", "fig21", "learning-curves")):
        return _run_lm(args)
    elif args.command == "bench":
        from rnnmem.bench.suite import run_bench

        run_bench(args.out_dir, args.repeats)
    return 0


def _run_chorales(args: argparse.Namespace) -> int:
    from rnnmem.chorales import jobs as chorale_jobs  # music21 and python-ly, not the Reber or memory code

    if args.command == "chorales-fetch":
        chorale_jobs.chorales_fetch(args.url, args.archive, args.scores_dir, args.listing)
    elif args.command == "chorales-events":
        chorale_jobs.chorales_events(args.source, args.params, args.listing, args.events, args.transposed,
                                     args.skipped)
    elif args.command == "chorales-dataset":
        chorale_jobs.chorales_dataset(args.params, args.transposed, args.skipped, args.out_dir)
    elif args.command == "chorales-agreement":
        chorale_jobs.chorales_agreement(args.lilypond, args.music21, args.out)
    elif args.command == "chorales-score":
        chorale_jobs.chorales_score(args.transposed, args.number, args.out)
    return 0


def _run_lm(args: argparse.Namespace) -> int:
    from rnnmem.lm import jobs as lm_jobs

    if args.command == "lm-train":
        lm_jobs.lm_train(args.params, args.tokens, args.vocab, args.checkpoint_dir, args.model, args.curve)
    elif args.command == "lm-score":
        lm_jobs.lm_score(args.params, args.tokens, args.vocab, args.model, args.out)
    elif args.command == "lm-ngram":
        lm_jobs.lm_ngram(args.params, args.tokens, args.vocab, args.out, args.orders)
    elif args.command == "lm-scores":
        lm_jobs.lm_scores(args.parts, args.out)
    elif args.command == "lm-samples":
        lm_jobs.lm_samples(args.params, args.vocab, args.model, args.out_dir, args.listing)
    elif args.command == "lm-sample-metrics":
        lm_jobs.lm_sample_metrics(args.listings, args.transposed, args.tokens, args.out, args.figure)
    elif args.command == "fig21":
        lm_jobs.fig21(args.params, args.sample_dirs, args.out)
    elif args.command == "learning-curves":
        lm_jobs.learning_curves(args.curves, args.table, args.figure)
    return 0
