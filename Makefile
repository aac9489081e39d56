# Heartline: the README's commands. `make run` and `make test` create .venv when needed and
# install what they need outside Python (scripts/ensure-system.sh: apt-get as root, otherwise one
# message naming what to install).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
RUN_DIR ?= runs/$(shell date +%Y%m%d-%H%M%S)

.PHONY: run run-qrs test lint lint-imports system-test system-run bench bench-qrs bench-denoise \
	bench-models bench-stream clean-venv

# One stamp per extra set: `make run` installs the service side only (no torch), `make test`
# everything (.[dev] = train + service + federated + test tools).
$(VENV)/.stamp-%: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Heartline needs Python 3.11"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[$*]'
	touch $@

DEV := $(VENV)/.stamp-dev
.SECONDARY: $(VENV)/.stamp-dev $(VENV)/.stamp-service
SERVICE := $(VENV)/.stamp-service

system-test:
	scripts/ensure-system.sh test

system-run:
	scripts/ensure-system.sh run

# The whole system: own Mosquitto, SQLite, stream processors, 8 simulated patients with real
# arrhythmias, API and dashboard; prints the URL and the demo logins. Ctrl-C stops it.
run: system-run $(SERVICE)
	$(VENV)/bin/heartline serve --patients 8 --state-dir $(RUN_DIR)

# The short R-peak benchmark that `make run` ran before the live service existed.
run-qrs: $(DEV)
	$(VENV)/bin/heartline bench qrs --quick --out $(RUN_DIR)

# The import contracts run first (seconds); tests/test_import_layers.py runs them again.
# --durations: the 30 slowest tests of every run are listed (docs/results/test-suite.md).
test: system-test $(DEV)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -q --durations=30

lint-imports: $(DEV)
	$(VENV)/bin/lint-imports

lint: $(DEV)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/lint-imports

bench: bench-qrs bench-denoise bench-models bench-stream

bench-qrs: $(DEV)
	$(VENV)/bin/heartline bench qrs --out $(RUN_DIR)/qrs

bench-denoise: $(DEV)
	$(VENV)/bin/heartline bench denoise --out $(RUN_DIR)/denoise

bench-models: $(DEV)
	$(VENV)/bin/heartline bench models --protocol inter-patient --hybrid-config configs/shipped/hybrid_best_tpl.toml --threads 2 --time-budget-s 150 --hybrid-time-budget-s 300 --out $(RUN_DIR)/models

bench-stream: $(DEV)
	$(VENV)/bin/heartline bench stream --out $(RUN_DIR)/stream

clean-venv:
	rm -rf $(VENV)
