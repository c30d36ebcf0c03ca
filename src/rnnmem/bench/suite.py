"""``make bench``: how fast the Reber ensembles train, and what the training loop costs on top of autograd.

For each model and regime, an ensemble of ``MEMBERS`` networks trains on embedded-Reber (or Reber) strings with
the success check switched off. The loop times its forward + loss + backward separately, so
``loop_overhead = step time / (forward + backward time)`` compares a full step with the bare autograd work on
the very same batches. A last row trains the same LSTMs one by one with torch's fused ``nn.LSTM`` (batch 1,
plain SGD), the alternative to batching the seeds.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from rnnmem.bench import memory as bench_memory
from rnnmem.bench.lm import bench_lm
from rnnmem.bench.rebuild import rebuild_table
from rnnmem.core.atomic import write_csv, write_text
from rnnmem.core.cells import SequencePredictor, fused_recurrence
from rnnmem.core.progress import summary
from rnnmem.reber.experiment_spec import Experiment
from rnnmem.reber.experiments import member_strings
from rnnmem.reber.grammars import GRAMMARS
from rnnmem.reber.sequences import encode
from rnnmem.reber.training import Regime, make_regime, train

MEMBERS = 30
BENCH_BATCH = 16
BENCH_EXPERIMENTS = (
    Experiment("reber_vanilla5", "reber", "vanilla", 5),
    Experiment("embedded_vanilla18", "embedded_reber", "vanilla", 18),
    Experiment("embedded_gru", "embedded_reber", "gru", 10),
    Experiment("embedded_lstm", "embedded_reber", "lstm", 8),
)


def _never_solved(model: SequencePredictor, active: torch.Tensor) -> torch.Tensor:
    return torch.zeros(model.members, dtype=torch.bool)


def bench_ensemble(experiment: Experiment, regime: Regime, strings: int) -> dict:
    """Train ``MEMBERS`` networks for ``strings`` strings each; no success checks."""
    seeds = list(range(MEMBERS))
    grammar = GRAMMARS[experiment.grammar]
    data = encode(grammar, [member_strings(grammar, s, 256, 0)[0] for s in seeds])
    model = SequencePredictor(experiment.model, 7, experiment.hidden, 7, members=MEMBERS,
                              activation=experiment.activation)
    model.reset_parameters(regime.init, seeds, regime.zero_bias)
    result = train(model, data, regime, seeds, strings, strings * 10, _never_solved, desc="bench")
    return {
        "experiment": experiment.name, "model": experiment.model, "hidden": experiment.hidden,
        "params": experiment.params, "regime": regime.name, "networks": MEMBERS,
        "batch_per_network": regime.batch_size, "steps": result.steps,
        "strings_per_s_per_network": strings / result.seconds,
        "strings_per_s_all_networks": strings * MEMBERS / result.seconds,
        "ms_per_step": 1e3 * result.seconds / result.steps,
        "ms_forward_backward": 1e3 * result.compute_seconds / result.steps,
        "loop_overhead": result.seconds / result.compute_seconds,
    }


def bench_fused_lstm_loop(hidden: int, strings: int, networks: int) -> dict:
    """The alternative: one fused nn.LSTM per seed, trained one after another with batch 1 SGD."""
    grammar = GRAMMARS["embedded_reber"]
    started = time.perf_counter()
    compute = 0.0
    for seed in range(networks):
        data = encode(grammar, [member_strings(grammar, seed, 256, 0)[0]])
        cell = SequencePredictor("lstm", 7, hidden, 7, members=1)
        cell.reset_parameters("normal", [seed])
        lstm = fused_recurrence(cell.recurrence)
        readout = torch.nn.Linear(hidden, 7)
        params = [p for p in (*lstm.parameters(), *readout.parameters()) if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.01)
        for step in range(strings):
            n = step % 256
            length = int(data.lengths[0, n])
            x, target = data.x[0, n : n + 1, :length], data.targets[0, n, :length]
            optimizer.zero_grad()
            t0 = time.perf_counter()
            hidden_states, _ = lstm(x)
            loss = ((readout(hidden_states[0]) - torch.nn.functional.one_hot(target, 7)) ** 2).sum()
            loss.backward()
            compute += time.perf_counter() - t0
            optimizer.step()
    seconds = time.perf_counter() - started
    return {
        "experiment": "embedded_lstm (fused nn.LSTM, one net at a time)", "model": "lstm", "hidden": hidden,
        "params": Experiment("x", "embedded_reber", "lstm", hidden).params, "regime": "seed",
        "networks": networks, "batch_per_network": 1, "steps": strings * networks,
        "strings_per_s_per_network": strings * networks / seconds / networks,
        "strings_per_s_all_networks": strings * networks / seconds,
        "ms_per_step": 1e3 * seconds / (strings * networks),
        "ms_forward_backward": 1e3 * compute / (strings * networks),
        "loop_overhead": seconds / compute,
    }


def run_bench(out_dir: Path, repeats: int = 20, config: Path = Path("config.yaml")) -> pd.DataFrame:
    """Time every model in both regimes of ``config`` (1 thread, as the training jobs run), then the memory grids
    (2 threads, as the D(l,k) jobs run); print tables, write CSV + markdown. The modern Reber regime is timed on
    minibatches of ``BENCH_BATCH`` strings (the config's tiny batches time the loop, not the arithmetic)."""
    settings = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    seed = make_regime("seed", settings["reber"]["regimes"]["seed"])
    modern = dataclasses.replace(make_regime("modern", settings["reber"]["regimes"]["modern"]), batch_size=BENCH_BATCH)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows = []
    for experiment in BENCH_EXPERIMENTS:
        rows.append(bench_ensemble(experiment, seed, strings=128 * repeats // 10))
        rows.append(bench_ensemble(experiment, modern, strings=1024 * repeats // 10))
    rows.append(bench_fused_lstm_loop(8, strings=64 * repeats // 10, networks=5))
    table = pd.DataFrame(rows)
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
               f"torch {torch.__version__}, device cpu")
    markdown = f"Machine: {machine}\n\n" + table.to_markdown(index=False, floatfmt=".4g") + "\n"
    print(markdown)
    write_csv(out_dir / "reber_training.csv", table)
    write_text(out_dir / "reber_training.md", markdown)
    run_lm_bench(out_dir, machine, settings["lm"]["regimes"])
    torch.set_num_threads(2)
    run_memory_bench(out_dir, machine.replace("1 torch thread(s)", "2 torch threads"))
    run_rebuild_bench(out_dir)
    summary(f"{len(table)} Reber training timings, the chorale-model and memory benches, in {out_dir}")
    return table


def run_lm_bench(out_dir: Path, machine: str, regimes: dict, source: Path = Path("results/chorales/music21")) -> None:
    """Chorale-model training throughput, on the tokens a previous run built (skipped, and said, if absent)."""
    tokens, vocab = source / "tokens.jsonl", source / "vocab.json"
    if not tokens.exists():
        print(f"chorale-model bench skipped: {tokens} does not exist (run make run first)")
        return
    table = bench_lm(tokens, vocab, regimes)
    markdown = f"Machine: {machine}\n\n" + table.to_markdown(index=False, floatfmt=".4g") + "\n"
    print(markdown)
    write_csv(out_dir / "chorale_training.csv", table)
    write_text(out_dir / "chorale_training.md", markdown)


def run_rebuild_bench(out_dir: Path, workdir: Path = Path(".")) -> None:
    """Job time per rule of the last ``make run`` against issue 12's starting point (skipped, and said, when no
    run left its benchmarks here)."""
    if not (workdir / "benchmarks").is_dir():
        print(f"rebuild table skipped: {workdir / 'benchmarks'} does not exist (run make run first)")
        return
    table = rebuild_table(workdir)
    markdown = ("Job seconds per rule of the last `make run` (Snakemake's benchmarks/) against issue 12's "
                "measurement before the compiled kernels\n\n" + table.to_markdown(index=False, floatfmt=".0f") + "\n")
    print(markdown)
    write_csv(out_dir / "rebuild.csv", table)
    write_text(out_dir / "rebuild.md", markdown)


def run_memory_bench(out_dir: Path, machine: str) -> None:
    """Paper-scale D(l,k) grid (both models) and MC grid, with torch's matmul rates for comparison."""
    rates = bench_memory.matmul_rates()
    dlk = bench_memory.bench_dlk()
    capacity = bench_memory.bench_capacity()
    summary = pd.DataFrame([{
        "dlk_grid_seconds_vanilla": dlk.loc[dlk["model"] == "vanilla", "seconds"].sum(),
        "dlk_grid_seconds_gru": dlk.loc[dlk["model"] == "gru", "seconds"].sum(),
        "dlk_grid_seconds_total": dlk["seconds"].sum(),
        "dlk_gflops_k50_gru": float(dlk.loc[(dlk["model"] == "gru") & (dlk["k"] == 50), "gflops"].iloc[0]),
        **rates,
        **capacity,
    }])
    markdown = (f"Machine: {machine}\n\nD(l,k) per (model, k), 2000 draws, l ≤ 2000, one process:\n\n"
                + dlk.to_markdown(index=False, floatfmt=".4g") + "\n\nTotals and rates:\n\n"
                + summary.T.reset_index().to_markdown(index=False, headers=["quantity", "value"], floatfmt=".4g")
                + "\n")
    print(markdown)
    write_csv(out_dir / "memory_dlk.csv", dlk)
    write_csv(out_dir / "memory_summary.csv", summary)
    write_text(out_dir / "memory.md", markdown)
