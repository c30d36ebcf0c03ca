# rnnmem: the report "Recurrent neural networks and memory: application to music" (Stérin, 2016) as one DAG.
# Outputs land in results/ (logs/, benchmarks/) under Snakemake's working directory; see README.md.


import os


report: "workflow/report/workflow.rst"


# The project's defaults, whatever the working directory (--directory); --configfile files are merged on top.
configfile: os.path.join(workflow.basedir, "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/reber.smk"
include: "workflow/rules/memory.smk"
include: "workflow/rules/chorales.smk"
include: "workflow/rules/lm.smk"
include: "workflow/rules/melody.smk"
include: "workflow/rules/report.smk"


wildcard_constraints:
    experiment="|".join(REBER_EXPERIMENTS),
    regime="|".join(REBER_REGIMES + LM_REGIMES),
    name="|".join(LM_MODELS),
    seed=r"\d+",


rule all:
    default_target: True
    input:
        reber_outputs(),
        memory_outputs(),
        chorale_outputs(),
        lm_outputs(),
        melody_outputs(),


# One branch of the report and what it needs: `snakemake --cores all reber` (or memory, chorales, melody).
rule reber:
    input:
        reber_outputs(),


rule memory:
    input:
        memory_outputs(),


rule chorales:
    input:
        chorale_outputs(),
        lm_outputs(),


rule melody:
    input:
        melody_outputs(),
