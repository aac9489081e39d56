# Heartline: the README's commands. `make run` and `make test` create .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp
RUN_DIR ?= runs/$(shell date +%Y%m%d-%H%M%S)

.PHONY: run run-qrs test lint bench bench-qrs bench-denoise bench-models bench-stream clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Heartline needs Python 3.11"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The whole system: own Mosquitto, SQLite, stream processors, 8 simulated patients with real
# arrhythmias, API and dashboard; prints the URL and the demo logins. Ctrl-C stops it.
run: $(STAMP)
	$(VENV)/bin/heartline serve --patients 8 --state-dir $(RUN_DIR)

# The short R-peak benchmark that `make run` ran before the live service existed.
run-qrs: $(STAMP)
	$(VENV)/bin/heartline bench qrs --quick --out $(RUN_DIR)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

bench: bench-qrs bench-denoise bench-models bench-stream

bench-qrs: $(STAMP)
	$(VENV)/bin/heartline bench qrs --out $(RUN_DIR)/qrs

bench-denoise: $(STAMP)
	$(VENV)/bin/heartline bench denoise --out $(RUN_DIR)/denoise

bench-models: $(STAMP)
	$(VENV)/bin/heartline bench models --protocol inter-patient --hybrid-config configs/shipped/hybrid_best_tpl.toml --threads 2 --time-budget-s 150 --hybrid-time-budget-s 300 --out $(RUN_DIR)/models

bench-stream: $(STAMP)
	$(VENV)/bin/heartline bench stream --out $(RUN_DIR)/stream

clean-venv:
	rm -rf $(VENV)
