# Report pages: every summary table as an HTML table (the report shows HTML, not CSV) and one page per chorale
# sample set with its engraved scores, audio players and MIDI files (the tables and pages they cover: common.smk).
# The CSVs stay where they are.


rule table_html:
    input:
        "results/{table}.csv",
    output:
        report(
            "results/{table}.html",
            caption="../report/tables.rst",
            category=table_meta(1),
            subcategory=table_meta(2),
            labels=table_labels,
        ),
    log:
        "logs/table_html/{table}.log",
    benchmark:
        "benchmarks/table_html/{table}.tsv"
    wildcard_constraints:
        table="|".join(re.escape(table) for table in REPORT_TABLES),
    conda:
        "../../envs/rnnmem.yaml"
    shell:
        f"{RNNMEM} table-html --csv {{input:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule lm_sample_page:
    input:
        samples="results/lm/samples/{name}_{regime}",
        listing="results/lm/samples/{name}_{regime}.csv",
    output:
        report(
            "results/lm/samples/{name}_{regime}.html",
            caption="../report/samples.rst",
            category=CHORALE_CATEGORY,
            subcategory="samples",
            labels={"model": "{name}", "regime": "{regime}"},
        ),
    log:
        "logs/lm_sample_page/{name}_{regime}.log",
    benchmark:
        "benchmarks/lm_sample_page/{name}_{regime}.tsv"
    conda:
        "../../envs/rnnmem.yaml"
    params:
        spec=lm_sample_page_params,
    shell:
        f"{RNNMEM} lm-sample-page --params {{params.spec:q}} --samples {{input.samples:q}} "
        "--listing {input.listing:q} --out {output:q} > {log:q} 2>&1"
