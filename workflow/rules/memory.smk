# Memory branch (report §2.1–2.3): gradient statistics, D(l,k), memory capacity.


rule gradient_summary:
    input:
        histograms=gradient_runs("gradients"),
    output:
        table="results/tables/gradients.csv",
        fig12="results/figures/fig12_gradients.png",
        fig13="results/figures/fig13_gradients_near_zero.png",
    params:
        zoom_max=MEMORY["gradients"]["zoom_max"],
    log:
        "logs/gradient_summary.log",
    benchmark:
        "benchmarks/gradient_summary.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} gradient-summary --histograms {{input.histograms:q}} --table {{output.table:q}} "
        "--fig12 {output.fig12:q} --fig13 {output.fig13:q} --zoom-max {params.zoom_max} > {log:q} 2>&1"


rule gradient_lag:
    input:
        models=gradient_runs("model"),
        specs=gradient_runs("spec"),
    output:
        table="results/memory/gradient_vs_lag.csv",
        figure="results/figures/gradient_vs_lag.png",
    params:
        spec=as_json({"strings": MEMORY["gradients"]["lag_strings"], "train_strings": REBER["train_strings"]}),
    log:
        "logs/gradient_lag.log",
    benchmark:
        "benchmarks/gradient_lag.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} gradient-lag --params {{params.spec:q}} --models {{input.models:q}} "
        "--specs {input.specs:q} --table {output.table:q} --figure {output.figure:q} > {log:q} 2>&1"
