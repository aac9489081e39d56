# Heartline: the README's commands. `make run` and `make test` create .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp
RUN_DIR ?= runs/$(shell date +%Y%m%d-%H%M%S)

.PHONY: run test lint bench bench-qrs bench-models clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Heartline needs Python 3.11"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/heartline bench qrs --quick --out $(RUN_DIR)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

bench: bench-qrs

bench-qrs: $(STAMP)
	$(VENV)/bin/heartline bench qrs --out $(RUN_DIR)

clean-venv:
	rm -rf $(VENV)
