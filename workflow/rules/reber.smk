# Reber branch (report §2.1): train ensembles over seeds, tabulate success, draw figures 7, 8, 10, 11.


rule reber_train:
    output:
        model="results/models/reber/{experiment}_{regime}.pt",
        spec="results/models/reber/{experiment}_{regime}.json",
        table="results/tables/reber/runs/{experiment}_{regime}.csv",
        gradients="results/tables/reber/gradients/{experiment}_{regime}.csv",
    log:
        "logs/reber_train/{experiment}_{regime}.log",
    benchmark:
        "benchmarks/reber_train/{experiment}_{regime}.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=2000,
        runtime=120,
    params:
        spec=reber_train_params,
    shell:
        f"{RNNMEM} reber-train --params {{params.spec:q}} --model {{output.model:q}} "
        "--spec {output.spec:q} --table {output.table:q} --gradients {output.gradients:q} > {log:q} 2>&1"


rule reber_tables:
    input:
        runs=reber_runs("table"),
    output:
        success="results/tables/reber_success.csv",
        summary="results/tables/reber_summary.csv",
        summary_md="results/tables/reber_summary.md",
    log:
        "logs/reber_tables.log",
    benchmark:
        "benchmarks/reber_tables.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} reber-tables --runs {{input.runs:q}} --success {{output.success:q}} "
        "--summary {output.summary:q} --summary-md {output.summary_md:q} > {log:q} 2>&1"


rule reber_figure:
    input:
        unpack(lambda wildcards: figure_run(wildcards.figure)),
    output:
        report(
            "results/figures/{figure}_{name}.png",
            caption="../report/reber_figure.rst",
            category=REBER_CATEGORY,
            subcategory="report figures",
            labels=reber_figure_labels,
        ),
    log:
        "logs/reber_figure/{figure}_{name}.log",
    benchmark:
        "benchmarks/reber_figure/{figure}_{name}.tsv"
    wildcard_constraints:
        figure="fig07|fig08|fig10|fig11",
        name="reber_outputs_vanilla|reber_hidden_states|embedded_vanilla|embedded_gru",
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} reber-figure --figure {{wildcards.figure}} --model {{input.model:q}} "
        "--spec {input.spec:q} --table {input.table:q} --out {output:q} > {log:q} 2>&1"


rule indistinguishable:
    input:
        models=embedded_runs("model"),
        specs=embedded_runs("spec"),
    output:
        "results/tables/indistinguishable.csv",
    log:
        "logs/indistinguishable.log",
    benchmark:
        "benchmarks/indistinguishable.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json({"random_draws": REBER["indistinguishable_random_draws"]}),
    shell:
        f"{RNNMEM} indistinguishable --params {{params.spec:q}} --models {{input.models:q}} "
        "--specs {input.specs:q} --out {output:q} > {log:q} 2>&1"


rule toy_language:
    output:
        "results/tables/toy_language.csv",
    log:
        "logs/toy_language.log",
    benchmark:
        "benchmarks/toy_language.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json(config["toy_language"]),
    shell:
        f"{RNNMEM} toy-language --params {{params.spec:q}} --out {{output:q}} > {{log:q}} 2>&1"
