# Two commands set up everything on a fresh machine: `make site` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lora-site-installed

# Determinism: one thread everywhere, a fixed hash seed, and no user matplotlibrc.
export PYTHONHASHSEED := 0
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export MPLBACKEND := Agg

.PHONY: site test clean bench install serve

site: $(STAMP)
	$(VENV)/bin/lora-site build

test: $(STAMP)
	$(PY) -m pytest

install: $(STAMP)

# Re-install when the lock file or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

clean:
	rm -rf site .cache .pytest_cache
