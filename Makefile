# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv, installs torch 2.13.0 first (the local CPU build), then the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/dfr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,demo,timm,export]"
	touch $(BIN)/dfr

install: $(BIN)/dfr

demo: install
	$(BIN)/dfr demo --out demo-output --overwrite
	$(BIN)/python docs/update_demo_tables.py demo-output

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-output bench-output
