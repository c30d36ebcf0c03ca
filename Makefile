# The interface users and CI rely on. Every target creates/updates .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Rules call `python -m rnnmem`: put the venv first on PATH for Snakemake's jobs.
export PATH := $(BIN):$(PATH)
CORES ?= all
# The flags of profiles/default (which Snakemake picks up by itself when started here), repeated so that they hold
# whatever profile is in force.
SNAKEMAKE := $(BIN)/python -m snakemake --cores $(CORES) --rerun-incomplete --printshellcmds --show-failed-logs
# With the Hardy archive beside the project (../shared), the smoke run also builds the LilyPond source.
SHARED_ARCHIVE := $(wildcard $(CURDIR)/../shared/data/hardy-lilypond-chorales.tar.gz)
SMOKE_CONFIGS := $(CURDIR)/tests/config.smoke.yaml $(if $(SHARED_ARCHIVE),$(CURDIR)/tests/config.smoke-lilypond.yaml)
SMOKE := $(SNAKEMAKE) --directory smoke --configfile $(SMOKE_CONFIGS) --snakefile $(CURDIR)/Snakefile
STAMP := $(VENV)/.installed
LOCK := requirements.lock
SLURM_LOCK := requirements-slurm.lock
# torch, pinned once, in pyproject.toml (a range admitting a newer release pulls a multi-GB CUDA build).
TORCH := $(shell sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml)
# Where torch comes from. The CPU wheel of torch 2.13.0 lies in /opt/wheels on the project's machines; elsewhere pip
# takes PyPI's Linux build (CUDA, several GB; it runs on CPUs too). CPU only, smaller:
#   make venv TORCH_FROM='--index-url https://download.pytorch.org/whl/cpu'
PIP_FIND := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
TORCH_FROM ?= $(PIP_FIND)
# `make lock` resolves torch's own dependencies against its CPU build (no CUDA packages in the lock).
LOCK_TORCH_WHEELS ?= $(if $(wildcard /opt/wheels),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)

.PHONY: venv lock run smoke test lint bench dry-run report clean test-cluster expected

venv: $(STAMP)

# Reinstall when the dependencies or their lock change: every package at its locked version and hash (runtime and
# dev), then torch (not in the lock: its wheel differs by platform and source, see TORCH_FROM), then the project
# without dependencies; `pip check` then fails if pyproject.toml asks for something the lock lacks. The stamp holds
# the lock's SHA-256 (tests/workflow/test_envs.py compares the installed versions with the lock when it matches).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet $(TORCH_FROM) '$(TORCH)'
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	sha256sum $(LOCK) >$@

# Regenerate requirements.lock after a change to the dependencies in pyproject.toml: versions already in the lock are
# kept where they still fit (`make lock LOCK_FLAGS=--upgrade` takes the newest allowed; --upgrade-package NAME one).
# For Linux x86-64 and Python 3.11, runtime + dev extra, with hashes; torch is resolved (as its CPU build) but left out.
# $(SLURM_LOCK) is the same plus the slurm extra (the SLURM executor plugin), held to the versions of $(LOCK): what
# `make test-cluster` and a cluster user install on top of the venv.
lock: venv
	$(BIN)/python -m uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package torch \
		--find-links $(LOCK_TORCH_WHEELS) -c <(echo '$(TORCH)+cpu') --custom-compile-command 'make lock' \
		$(LOCK_FLAGS) -o $(LOCK)
	$(BIN)/python -m uv pip compile pyproject.toml --extra dev --extra slurm --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package torch \
		--find-links $(LOCK_TORCH_WHEELS) -c <(echo '$(TORCH)+cpu') -c $(LOCK) --custom-compile-command 'make lock' \
		$(LOCK_FLAGS) -o $(SLURM_LOCK)

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
