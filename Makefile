# The interface users and CI rely on. Every target creates/updates .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Rules call `python -m rnnmem`: put the venv first on PATH for Snakemake's jobs.
export PATH := $(BIN):$(PATH)
CORES ?= all
SNAKEMAKE := $(BIN)/python -m snakemake --cores $(CORES) --rerun-incomplete --printshellcmds
# With the Hardy archive beside the project (../shared), the smoke run also builds the LilyPond source.
SHARED_ARCHIVE := $(wildcard $(CURDIR)/../shared/data/hardy-lilypond-chorales.tar.gz)
SMOKE_CONFIGS := $(CURDIR)/tests/config.smoke.yaml $(if $(SHARED_ARCHIVE),$(CURDIR)/tests/config.smoke-lilypond.yaml)
SMOKE := $(SNAKEMAKE) --directory smoke --configfile $(SMOKE_CONFIGS) --snakefile $(CURDIR)/Snakefile
STAMP := $(VENV)/.installed
# The CPU wheel of torch 2.13.0 lies in /opt/wheels on the project's machines; elsewhere pip uses PyPI.
PIP_FIND := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: venv run smoke test lint bench dry-run report clean test-cluster expected

venv: $(STAMP)

# Reinstall when the project's dependencies change. torch is pinned to 2.13.0 (see pyproject.toml).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PIP_FIND) -e '.[dev]'
	touch $@

run: venv  ## the whole DAG on config.yaml, all cores
	$(SNAKEMAKE)

dry-run: venv
	$(SNAKEMAKE) --dry-run

smoke: venv  ## the whole DAG on the smoke config, into smoke/results/, then smoke/results/report.html
	$(SMOKE)
	$(SMOKE) --report results/report.html

report: venv  ## results/report.html: every figure and summary table of the paper config (run `make run` first)
	$(SNAKEMAKE) --report results/report.html

test: venv  ## unit and workflow tests
	$(BIN)/python -m pytest

# Deliberate step when a change is meant to move results: rerun the smoke DAG (with ../shared's Hardy archive) and
# rewrite tests/expected/smoke-tables.sha256, the SHA-256 of every smoke table that `make test` checks.
expected: venv
	$(BIN)/python tests/smoke_tables.py --update

lint: venv  ## ruff, snakefmt (pinned in the dev extra) and snakemake --lint; tests/workflow/test_lint.py runs the same
	$(BIN)/python -m ruff check .
	$(BIN)/python -m snakefmt --check Snakefile workflow/rules
	$(BIN)/python -m snakemake --lint

bench: venv  ## training throughput, loop overhead, D(l,k) and MC grid times into results/bench/
	$(BIN)/python -m rnnmem bench --out-dir results/bench

clean:
	rm -rf smoke .snakemake

# The smoke DAG through a real single-node SLURM (installed from Debian's archive, started in a temporary folder on
# 127.0.0.1, stopped afterwards) and locally at the same time; outputs and result tables must agree. Needs root;
# settings and phases: tests/cluster/run.sh.
test-cluster: venv
	$(SHELL) tests/cluster/run.sh
