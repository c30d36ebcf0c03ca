# Chorale data branch (report §3.2): sources -> soprano events -> transposed to C -> tokens and splits.


rule chorales_fetch:
    output:
        archive="results/chorales/lilypond/archive.tar.gz",
        scores=directory("results/chorales/lilypond/ly"),
        listing="results/chorales/lilypond/ly_files.csv",
    log:
        "logs/chorales_fetch.log",
    benchmark:
        "benchmarks/chorales_fetch.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        url=lilypond_url(),
    shell:
        f"{RNNMEM} chorales-fetch --url {{params.url:q}} --archive {{output.archive:q}} "
        "--scores-dir {output.scores:q} --listing {output.listing:q} > {log:q} 2>&1"


rule chorales_events:
    input:
        unpack(chorale_listing),
    output:
        events="results/chorales/{source}/events.jsonl",
        transposed="results/chorales/{source}/transposed.jsonl",
        skipped="results/chorales/{source}/skipped.csv",
    log:
        "logs/chorales_events/{source}.log",
    benchmark:
        "benchmarks/chorales_events/{source}.tsv"
    wildcard_constraints:
        source="music21|lilypond",
    conda:
        "../../envs/rnnmem.yaml"
    threads: 2
    params:
        spec=chorale_event_params(),
        listing=lambda wildcards, input: (
            f"--listing {input.listing}" if "listing" in input.keys() else ""
        ),
    shell:
        f"{RNNMEM} chorales-events --source {{wildcards.source}} --params {{params.spec:q}} {{params.listing}} "
        "--events {output.events:q} --transposed {output.transposed:q} --skipped {output.skipped:q} > {log:q} 2>&1"


rule chorales_dataset:
    input:
        transposed="results/chorales/{source}/transposed.jsonl",
        skipped="results/chorales/{source}/skipped.csv",
    output:
        tokens="results/chorales/{source}/tokens.jsonl",
        vocab="results/chorales/{source}/vocab.json",
        splits="results/chorales/{source}/splits.json",
        stats="results/chorales/{source}/stats.csv",
        text=directory("results/chorales/{source}/text"),
    log:
        "logs/chorales_dataset/{source}.log",
    benchmark:
        "benchmarks/chorales_dataset/{source}.tsv"
    wildcard_constraints:
        source="music21|lilypond",
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json({"split": CHORALES["split"]}),
    shell:
        f"{RNNMEM} chorales-dataset --params {{params.spec:q}} --transposed {{input.transposed:q}} "
        "--skipped {input.skipped:q} --out-dir results/chorales/{wildcards.source} > {log:q} 2>&1"


# The modern regime's training data with lm.regimes.modern.transpose: training chorales plus shifted copies.
rule chorales_augmented:
    input:
        tokens="results/chorales/{source}/tokens.jsonl",
        vocab="results/chorales/{source}/vocab.json",
        transposed="results/chorales/{source}/transposed.jsonl",
    output:
        tokens="results/chorales/{source}/augmented/tokens.jsonl",
        vocab="results/chorales/{source}/augmented/vocab.json",
        stats="results/chorales/{source}/augmented/stats.csv",
    log:
        "logs/chorales_augmented/{source}.log",
    benchmark:
        "benchmarks/chorales_augmented/{source}.tsv"
    wildcard_constraints:
        source="music21|lilypond",
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json({"transpose": LM_SHIFTS.get("modern", [])}),
    shell:
        f"{RNNMEM} chorales-augmented --params {{params.spec:q}} --tokens {{input.tokens:q}} "
        "--vocab {input.vocab:q} --transposed {input.transposed:q} "
        "--out-dir results/chorales/{wildcards.source}/augmented > {log:q} 2>&1"


rule chorales_agreement:
    input:
        lilypond="results/chorales/lilypond/transposed.jsonl",
        music21="results/chorales/music21/transposed.jsonl",
    output:
        "results/chorales/source_agreement.csv",
    log:
        "logs/chorales_agreement.log",
    benchmark:
        "benchmarks/chorales_agreement.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} chorales-agreement --lilypond {{input.lilypond:q}} --music21 {{input.music21:q}} "
        "--out {output:q} > {log:q} 2>&1"


rule chorales_score:
    input:
        "results/chorales/{source}/transposed.jsonl",
    output:
        "results/chorales/{source}/scores/{number}.png",
    log:
        "logs/chorales_score/{source}_{number}.log",
    benchmark:
        "benchmarks/chorales_score/{source}_{number}.tsv"
    wildcard_constraints:
        source="music21|lilypond",
        number=r"\d{3}",
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} chorales-score --transposed {{input:q}} --number {{wildcards.number}} --out {{output:q}} "
        "> {log:q} 2>&1"


rule fig19_soprano:
    input:
        f"results/chorales/{CHORALES['source']}/transposed.jsonl",
    output:
        report(
            "results/figures/fig19_soprano_bwv269.png",
            caption="../report/fig19.rst",
            category=CHORALE_CATEGORY,
            subcategory="report figures",
            labels={"figure": "fig 19"},
        ),
    log:
        "logs/fig19_soprano.log",
    benchmark:
        "benchmarks/fig19_soprano.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} chorales-score --transposed {{input:q}} --number 1 --out {{output:q}} > {{log:q}} 2>&1"
