# Chorale models (report §3.2–3.3): train, score against an n-gram baseline, sample, render, measure.


rule lm_train:
    input:
        unpack(lm_data),
        # the vocabulary a parameter budget is matched on: the base one, also for augmented data
        budget_vocab=f"{LM_DATA}/vocab.json",
    output:
        model="results/lm/models/{name}_{regime}_s{seed}.pt",
        curve="results/lm/curves/{name}_{regime}_s{seed}.csv",
    log:
        "logs/lm_train/{name}_{regime}_s{seed}.log",
    benchmark:
        "benchmarks/lm_train/{name}_{regime}_s{seed}.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    params:
        spec=lm_params,
        # Not an output: it survives a killed job, and the rerun (--rerun-incomplete) resumes from it. One file
        # per run identity (settings, data, vocabulary) in the job's folder, so a changed setting never meets the
        # checkpoint of another run; the job removes the others once its model is written.
        checkpoint_dir="results/lm/checkpoints/{name}_{regime}_s{seed}",
    shell:
        f"{RNNMEM} lm-train --params {{params.spec:q}} --tokens {{input.tokens:q}} --vocab {{input.vocab:q}} "
        "--budget-vocab {input.budget_vocab:q} --checkpoint-dir {params.checkpoint_dir:q} --model {output.model:q} "
        "--curve {output.curve:q} > {log:q} 2>&1"


rule lm_score:
    input:
        unpack(lm_data),
        model="results/lm/models/{name}_{regime}_s{seed}.pt",
    output:
        "results/lm/scores/{name}_{regime}_s{seed}.csv",
    log:
        "logs/lm_score/{name}_{regime}_s{seed}.log",
    benchmark:
        "benchmarks/lm_score/{name}_{regime}_s{seed}.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=lm_params,
    shell:
        f"{RNNMEM} lm-score --params {{params.spec:q}} --tokens {{input.tokens:q}} --vocab {{input.vocab:q}} "
        "--model {input.model:q} --out {output:q} > {log:q} 2>&1"


# The mean distribution of a (model, regime)'s seeds, scored like one model (regimes with two seeds or more).
rule lm_ensemble_score:
    input:
        unpack(lm_data),
        models=lm_seed_models,
    output:
        "results/lm/scores/{name}_{regime}_ensemble.csv",
    log:
        "logs/lm_ensemble_score/{name}_{regime}.log",
    benchmark:
        "benchmarks/lm_ensemble_score/{name}_{regime}.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=lm_params_no_seed,
    shell:
        f"{RNNMEM} lm-ensemble-score --params {{params.spec:q}} --tokens {{input.tokens:q}} "
        "--vocab {input.vocab:q} --models {input.models:q} --out {output:q} > {log:q} 2>&1"


rule lm_ngram:
    input:
        tokens=f"{LM_DATA}/tokens.jsonl",
        vocab=f"{LM_DATA}/vocab.json",
    output:
        score="results/lm/scores/ngram.csv",
        orders="results/lm/ngram_orders.csv",
    log:
        "logs/lm_ngram.log",
    benchmark:
        "benchmarks/lm_ngram.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json({"orders": LM["ngram_orders"], "source": CHORALES["source"]}),
    shell:
        f"{RNNMEM} lm-ngram --params {{params.spec:q}} --tokens {{input.tokens:q}} --vocab {{input.vocab:q}} "
        "--out {output.score:q} --orders {output.orders:q} > {log:q} 2>&1"


# The fair baseline of the augmented modern models: the n-gram on the same training copies and vocabulary.
rule lm_ngram_augmented:
    input:
        tokens=f"{LM_DATA}/augmented/tokens.jsonl",
        vocab=f"{LM_DATA}/augmented/vocab.json",
    output:
        score="results/lm/scores/ngram_augmented.csv",
        orders="results/lm/ngram_orders_augmented.csv",
    log:
        "logs/lm_ngram_augmented.log",
    benchmark:
        "benchmarks/lm_ngram_augmented.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json(
            {
                "orders": LM["ngram_orders"],
                "source": CHORALES["source"],
                "transpose": LM_SHIFTS.get("modern", []),
            }
        ),
    shell:
        f"{RNNMEM} lm-ngram --params {{params.spec:q}} --tokens {{input.tokens:q}} --vocab {{input.vocab:q}} "
        "--out {output.score:q} --orders {output.orders:q} > {log:q} 2>&1"


rule lm_scores:
    input:
        parts=lm_score_parts(),
    output:
        "results/chorales/scores.csv",
    log:
        "logs/lm_scores.log",
    benchmark:
        "benchmarks/lm_scores.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} lm-scores --parts {{input.parts:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule lm_samples:
    input:
        vocab=lm_vocab,
        models=lm_sample_models,
        transposed=f"{LM_DATA}/transposed.jsonl",
        tokens=f"{LM_DATA}/tokens.jsonl",
    output:
        samples=directory("results/lm/samples/{name}_{regime}"),
        listing="results/lm/samples/{name}_{regime}.csv",
    log:
        "logs/lm_samples/{name}_{regime}.log",
    benchmark:
        "benchmarks/lm_samples/{name}_{regime}.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=lm_sample_params,
    shell:
        f"{RNNMEM} lm-samples --params {{params.spec:q}} --vocab {{input.vocab:q}} --model {{input.models:q}} "
        "--transposed {input.transposed:q} --tokens {input.tokens:q} --out-dir {output.samples:q} "
        "--listing {output.listing:q} > {log:q} 2>&1"


rule lm_sample_metrics:
    input:
        listings=lm_runs("results/lm/samples/{name}_{regime}.csv"),
        transposed=f"{LM_DATA}/transposed.jsonl",
        tokens=f"{LM_DATA}/tokens.jsonl",
    output:
        table="results/chorales/sample_metrics.csv",
        figure=report(
            "results/figures/sample_metrics.png",
            caption="../report/sample_metrics.rst",
            category=CHORALE_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "sample metrics", "model": "every sample set"},
        ),
    log:
        "logs/lm_sample_metrics.log",
    benchmark:
        "benchmarks/lm_sample_metrics.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} lm-sample-metrics --listings {{input.listings:q}} --transposed {{input.transposed:q}} "
        "--tokens {input.tokens:q} --out {output.table:q} --figure {output.figure:q} > {log:q} 2>&1"


rule fig21_samples:
    input:
        dirs=fig21_dirs(),
    output:
        report(
            "results/figures/fig21_samples.png",
            caption="../report/fig21.rst",
            category=CHORALE_CATEGORY,
            subcategory="report figures",
            labels={"figure": "fig 21", "model": fig21_models()},
        ),
    log:
        "logs/fig21_samples.log",
    benchmark:
        "benchmarks/fig21_samples.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json(
            {
                "temperature": LM["figure21"]["temperature"],
                "labels": [
                    lm_sample_label(name, LM["figure21"]["regime"])
                    for name in LM["figure21"]["models"]
                ],
            }
        ),
    shell:
        f"{RNNMEM} fig21 --params {{params.spec:q}} --sample-dirs {{input.dirs:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule learning_curves:
    input:
        # the first seed of each (model, regime)
        curves=lm_seed_runs(
            "results/lm/curves/{name}_{regime}_s{seed}.csv", first_only=True
        ),
    output:
        table="results/chorales/learning_curves.csv",
        figure=report(
            "results/figures/chorale_learning_curves.png",
            caption="../report/learning_curves.rst",
            category=CHORALE_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "learning curves", "model": "every model"},
        ),
    log:
        "logs/learning_curves.log",
    benchmark:
        "benchmarks/learning_curves.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} learning-curves --curves {{input.curves:q}} --table {{output.table:q}} "
        "--figure {output.figure:q} > {log:q} 2>&1"
