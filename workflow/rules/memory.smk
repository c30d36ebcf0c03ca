# Memory branch (report §2.1–2.3): gradient statistics, D(l,k), memory capacity.


rule gradient_summary:
    input:
        histograms=gradient_runs("gradients"),
    output:
        table="results/tables/gradients.csv",
        fig12=report(
            "results/figures/fig12_gradients.png",
            caption="../report/fig12.rst",
            category=MEMORY_CATEGORY,
            subcategory="report figures",
            labels={"figure": "fig 12", "model": "Vanilla, GRU"},
        ),
        fig13=report(
            "results/figures/fig13_gradients_near_zero.png",
            caption="../report/fig13.rst",
            category=MEMORY_CATEGORY,
            subcategory="report figures",
            labels={"figure": "fig 13", "model": "Vanilla, GRU"},
        ),
    log:
        "logs/gradient_summary.log",
    benchmark:
        "benchmarks/gradient_summary.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        zoom_max=MEMORY["gradients"]["zoom_max"],
    shell:
        f"{RNNMEM} gradient-summary --histograms {{input.histograms:q}} --table {{output.table:q}} "
        "--fig12 {output.fig12:q} --fig13 {output.fig13:q} --zoom-max {params.zoom_max} > {log:q} 2>&1"


rule gradient_lag:
    input:
        models=gradient_runs("model"),
        specs=gradient_runs("spec"),
    output:
        table="results/memory/gradient_vs_lag.csv",
        figure=report(
            "results/figures/gradient_vs_lag.png",
            caption="../report/gradient_vs_lag.rst",
            category=MEMORY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "gradient vs lag", "model": "Vanilla, GRU"},
        ),
    log:
        "logs/gradient_lag.log",
    benchmark:
        "benchmarks/gradient_lag.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json(
            {
                "strings": MEMORY["gradients"]["lag_strings"],
                "train_strings": REBER["train_strings"],
            }
        ),
    shell:
        f"{RNNMEM} gradient-lag --params {{params.spec:q}} --models {{input.models:q}} "
        "--specs {input.specs:q} --table {output.table:q} --figure {output.figure:q} > {log:q} 2>&1"


rule dlk:
    output:
        "results/memory/dlk/{model}_k{k}.csv",
    log:
        "logs/dlk/{model}_k{k}.log",
    benchmark:
        "benchmarks/dlk/{model}_k{k}.tsv"
    wildcard_constraints:
        model="vanilla|gru",
        k=r"\d+",
    conda:
        "../../envs/rnnmem.yaml"
    # One thread: two parts side by side use a 2-core machine fully (the draws' pool reaches ~1.5 threads); D and
    # its table do not depend on the count, so a cluster may give more (--set-threads dlk=8).
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=dlk_part_params,
    shell:
        f"{RNNMEM} dlk --params {{params.spec:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule dlk_convention:
    output:
        "results/memory/dlk_conventions/{model}_{bias}_{input}_k{k}.csv",
    log:
        "logs/dlk_conventions/{model}_{bias}_{input}_k{k}.log",
    benchmark:
        "benchmarks/dlk_conventions/{model}_{bias}_{input}_k{k}.tsv"
    wildcard_constraints:
        model="vanilla|gru",
        bias="zero|normal",
        input="one_hot|scalar",
        k=r"\d+",
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=dlk_part_params,
    shell:
        f"{RNNMEM} dlk --params {{params.spec:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule dlk_conventions:
    input:
        parts=[path for _, path in dlk_convention_parts()],
    output:
        "results/memory/dlk_conventions.csv",
    log:
        "logs/dlk_conventions.log",
    benchmark:
        "benchmarks/dlk_conventions.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json(
            {
                "parts": [meta for meta, _ in dlk_convention_parts()],
                "max_l": DLK["max_l"],
            }
        ),
    shell:
        f"{RNNMEM} dlk-conventions --params {{params.spec:q}} --parts {{input.parts:q}} "
        "--out {output:q} > {log:q} 2>&1"


rule dlk_merge:
    input:
        parts=expand("results/memory/dlk/{{model}}_k{k}.csv", k=DLK["k"]),
    output:
        "results/memory/dlk_{model}.csv",
    log:
        "logs/dlk_merge/{model}.log",
    benchmark:
        "benchmarks/dlk_merge/{model}.tsv"
    wildcard_constraints:
        model="vanilla|gru",
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} dlk-merge --parts {{input.parts:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule dlk_figures:
    input:
        tables=dlk_tables(),
    output:
        heatmaps=[
            report(
                DLK_FIGURES[model],
                caption=f"../report/{DLK_CAPTIONS[model]}.rst",
                category=MEMORY_CATEGORY,
                subcategory="report figures",
                labels=DLK_LABELS[model],
            )
            for model in DLK["models"]
        ],
        curves=report(
            "results/figures/dlk_curves.png",
            caption="../report/dlk_curves.rst",
            category=MEMORY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "D(l,k) curves", "model": "Vanilla, GRU"},
        ),
    log:
        "logs/dlk_figures.log",
    benchmark:
        "benchmarks/dlk_figures.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json(
            {
                key: DLK[key]
                for key in (
                    "models",
                    "curves_k",
                    "weight_scale",
                    "bias",
                    "input",
                    "tail_threshold",
                )
            }
        ),
    shell:
        f"{RNNMEM} dlk-figures --params {{params.spec:q}} --tables {{input.tables:q}} "
        "--heatmaps {output.heatmaps:q} --curves {output.curves:q} > {log:q} 2>&1"


rule capacity:
    output:
        esn="results/memory/mc_esn.csv",
        gru="results/memory/mc_gru.csv",
        totals="results/memory/mc_totals.csv",
    log:
        "logs/capacity.log",
    benchmark:
        "benchmarks/capacity.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=as_json(
            {key: value for key, value in CAPACITY.items() if key != "input_scales"}
        ),
    shell:
        f"{RNNMEM} capacity --params {{params.spec:q}} --esn {{output.esn:q}} --gru {{output.gru:q}} "
        "--totals {output.totals:q} > {log:q} 2>&1"


rule capacity_figures:
    input:
        esn="results/memory/mc_esn.csv",
        gru="results/memory/mc_gru.csv",
        totals="results/memory/mc_totals.csv",
        dlk=dlk_tables(),
    output:
        fig16=report(
            "results/figures/fig16_mc_esn.png",
            caption="../report/fig16.rst",
            category=MEMORY_CATEGORY,
            subcategory="report figures",
            labels={"figure": "fig 16", "model": "ESN"},
        ),
        mc_gru=report(
            "results/figures/mc_gru.png",
            caption="../report/mc_gru.rst",
            category=MEMORY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "MC of a random GRU", "model": "GRU"},
        ),
        mc_total=report(
            "results/figures/mc_total.png",
            caption="../report/mc_total.rst",
            category=MEMORY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "total MC", "model": "ESN, GRU"},
        ),
        dlk_vs_mc=report(
            "results/figures/dlk_vs_mc.png",
            caption="../report/dlk_vs_mc.rst",
            category=MEMORY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "D(l,k) beside MC", "model": "Vanilla, GRU, ESN"},
        ),
    log:
        "logs/capacity_figures.log",
    benchmark:
        "benchmarks/capacity_figures.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=as_json(
            {
                "esn": CAPACITY["esn"],
                "gru": CAPACITY["gru"],
                "dlk_models": DLK["models"],
                "compare_k": DLK["compare_k"],
            }
        ),
    shell:
        f"{RNNMEM} capacity-figures --params {{params.spec:q}} --esn {{input.esn:q}} --gru {{input.gru:q}} "
        "--totals {input.totals:q} --dlk {input.dlk:q} --fig16 {output.fig16:q} --mc-gru {output.mc_gru:q} "
        "--mc-total {output.mc_total:q} --dlk-vs-mc {output.dlk_vs_mc:q} > {log:q} 2>&1"


rule capacity_input_scale:
    output:
        table="results/memory/mc_input_scale.csv",
        figure=report(
            "results/figures/mc_input_scale.png",
            caption="../report/mc_input_scale.rst",
            category=MEMORY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "MC against input scale", "model": "ESN"},
        ),
    log:
        "logs/capacity_input_scale.log",
    benchmark:
        "benchmarks/capacity_input_scale.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=as_json({key: value for key, value in CAPACITY.items() if key != "gru"}),
    shell:
        f"{RNNMEM} capacity-input-scale --params {{params.spec:q}} --table {{output.table:q}} "
        "--figure {output.figure:q} > {log:q} 2>&1"


rule capacity_linear:
    output:
        table="results/memory/mc_linear.csv",
        figure=report(
            "results/figures/mc_linear.png",
            caption="../report/mc_linear.rst",
            category=MEMORY_CATEGORY,
            subcategory="beyond the report",
            labels={"figure": "MC of linear ESNs", "model": "linear ESN"},
        ),
    log:
        "logs/capacity_linear.log",
    benchmark:
        "benchmarks/capacity_linear.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=as_json(
            {
                key: value
                for key, value in CAPACITY.items()
                if key not in ("gru", "input_scales")
            }
        ),
    shell:
        f"{RNNMEM} capacity-linear --params {{params.spec:q}} --table {{output.table:q}} "
        "--figure {output.figure:q} > {log:q} 2>&1"
