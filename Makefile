# carbond: the two set-up commands are `make demo` and `make test`; `make check` is what CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test check lint typecheck bench backtests validate calibrate clean kill-harness fuzz weeks
.PHONY: slurm-up slurm-down slurm-status slurm-record

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when pyproject.toml changes; the stamp records which extras are in.
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	touch $@ $(VENV)/.stamp-base

# The daemon on its embedded default (simulated paper GPUs, embedded intensity), then the paper's
# characterisation with carbond's own model (tables + PNG figures in demo-out/).
demo: $(VENV)/.stamp-base
	rm -rf demo-out/state
	$(BIN)/carbond demo --state-dir demo-out/state
	$(BIN)/carbond paper --out demo-out

# The suite on TEST_WORKERS pytest-xdist workers (0: in this process, no xdist). `--dist loadgroup`
# keeps the tests on the one local Slurm cluster (the xdist group `slurm`, tests/conftest.py) on
# one worker, one at a time; as they mostly wait on Slurm, one worker more than the cores runs the
# CPU-bound tests beside them.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
test: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check forecasts policies daemon tests bench
	$(BIN)/ruff format --check forecasts policies daemon tests bench

typecheck: $(VENV)/.stamp-dev
	$(BIN)/mypy

check: lint typecheck test

# The kill-point harness's long profile: KILLS SIGKILLs of the real `carbond run` at named points
# (daemon/killpoints.py) and at random moments, each followed by a restart and the invariant
# checks (tests/daemon/killharness.py); prints the tally. About 2.5 s a kill on 2 cores.
KILLS ?= 500
kill-harness: $(VENV)/.stamp-dev
	root=$$(mktemp -d) && nice -n 10 $(BIN)/python -m tests.daemon.killharness --kills $(KILLS) \
		--root $$root && rm -rf $$root

# Every hypothesis property test (marked `fuzz` at collection) with the long profile:
# FUZZ_EXAMPLES times each test's weight (cheap properties more, slow ones fewer); prints the
# number of examples run.
FUZZ_EXAMPLES ?= 17000
fuzz: $(VENV)/.stamp-dev
	CARBOND_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) nice -n 10 $(BIN)/python -m pytest -m fuzz \
		--hypothesis-profile=fuzz -p no:cacheprovider -q

bench: $(VENV)/.stamp-dev
	$(BIN)/python -m bench

# Estimator accuracy on the ML.ENERGY measurements (../shared/data): v2 fit set, v3 held out;
# then the same with the simulation study's power curve in place of the calibrated one.
validate: $(VENV)/.stamp-base
	$(BIN)/python -m bench.validate_energy
	$(BIN)/python -m bench.validate_energy --power-model study --worst 3

# Refit the vllm serving model on the v2 measurements; rewrites policies/footprint/_calibrated.py.
calibrate: $(VENV)/.stamp-base
	$(BIN)/python -m bench.fit_energy

# Forecaster backtests on the real 2023 traces (../shared/data): the table in docs/forecasts.md.
backtests: $(VENV)/.stamp-base
	$(BIN)/python -m bench.backtests

# Week-long replays of every policy against the LP bound on four clusters at slack 0/4 h/12 h
# (../shared/data): the tables in docs/policies.md. ~1 h of CPU; results in out/weeks/.
weeks: $(VENV)/.stamp-base
	$(BIN)/python -m bench.weeks

# A throwaway local Slurm cluster (root; installs the Debian packages when missing) for the tests
# marked `slurm`: everything under $$CARBOND_SLURM_DIR (/tmp/carbond-slurm), ports from
# $$CARBOND_SLURM_PORT_BASE (17000). See docs/slurm.md.
slurm-up:
	$(PYTHON) -m tests.slurm.localcluster up

slurm-down:
	$(PYTHON) -m tests.slurm.localcluster down

slurm-status:
	$(PYTHON) -m tests.slurm.localcluster status

# Rewrite tests/daemon/executors/slurm_outputs/states/ (real outputs for the Slurm parsers' tests) from a
# fresh cluster of its own (folder and ports apart from slurm-up's); about two minutes.
slurm-record:
	TZ=UTC CARBOND_SLURM_DIR=/tmp/carbond-slurm-record CARBOND_SLURM_PORT_BASE=17100 \
	  $(PYTHON) -m tests.slurm.record_outputs

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info
