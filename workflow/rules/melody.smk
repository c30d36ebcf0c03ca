# Melody benchmark (issue 14, beyond the report): next-pitch bits/note of the chorale sopranos, cross-validated,
# PPM, a Kneser-Ney n-gram and a neural model against Pearce (2005) / IDyOM's published numbers.


rule melody_corpus:
    output:
        "results/melody/melodies.json",
    log:
        "logs/melody_corpus.log",
    benchmark:
        "benchmarks/melody_corpus.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    threads: 2
    params:
        spec=melody_corpus_params(),
    shell:
        f"{RNNMEM} melody-corpus --params {{params.spec:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule melody_baselines:
    input:
        melodies="results/melody/melodies.json",
    output:
        "results/melody/baselines_{kind}.csv",
    log:
        "logs/melody_baselines/{kind}.log",
    benchmark:
        "benchmarks/melody_baselines/{kind}.tsv"
    wildcard_constraints:
        kind="grouped|plain",
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        spec=melody_baseline_params,
    shell:
        f"{RNNMEM} melody-baselines --params {{params.spec:q}} --melodies {{input.melodies:q}} --out {{output:q}} "
        "> {log:q} 2>&1"


# One test fold per job (CPU: the network is small, its batches are short; ~3 min per fold with the config's
# settings on one thread).
rule melody_neural:
    input:
        melodies="results/melody/melodies.json",
    output:
        "results/melody/neural/{kind}_fold{fold}.csv",
    log:
        "logs/melody_neural/{kind}_fold{fold}.log",
    benchmark:
        "benchmarks/melody_neural/{kind}_fold{fold}.tsv"
    wildcard_constraints:
        kind="grouped|plain",
        fold=r"\d+",
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        spec=melody_neural_params,
    shell:
        f"{RNNMEM} melody-neural --params {{params.spec:q}} --melodies {{input.melodies:q}} --out {{output:q}} "
        "> {log:q} 2>&1"


rule melody_benchmark:
    input:
        melodies="results/melody/melodies.json",
        parts=melody_parts(),
    output:
        table="results/chorales/melody_benchmark.csv",
        markdown="results/chorales/melody_benchmark.md",
        figure=report(
            "results/figures/melody_benchmark.png",
            caption="../report/melody_benchmark.rst",
            category=MELODY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "melody benchmark", "model": "PPM, n-gram, neural"},
        ),
    log:
        "logs/melody_benchmark.log",
    benchmark:
        "benchmarks/melody_benchmark.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} melody-benchmark --melodies {{input.melodies:q}} --parts {{input.parts:q}} "
        "--table {output.table:q} --markdown {output.markdown:q} --figure {output.figure:q} > {log:q} 2>&1"
