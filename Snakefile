# rnnmem: the report "Recurrent neural networks and memory: application to music" (Stérin, 2016) as one DAG.
# Outputs land in results/ (logs/, benchmarks/) under Snakemake's working directory; see README.md.


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/reber.smk"
include: "workflow/rules/memory.smk"
include: "workflow/rules/chorales.smk"


wildcard_constraints:
    experiment="|".join(REBER_EXPERIMENTS),
    regime="|".join(REBER_REGIMES),


rule all:
    input:
        reber_outputs(),
        memory_outputs(),
        chorale_outputs(),
    default_target: True
