# Two commands set up everything on a fresh machine: `make site` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lora-site-installed
# npm writes this file on every install; it is older than package-lock.json when the lock changed.
NPM_STAMP := node_modules/.package-lock.json

# Determinism: a fixed hash seed and no user matplotlibrc. The numeric kernels and thread
# counts are pinned by the program itself (generator/numerics.py), so `lora-site build` run by
# hand gives the same bits as `make site`.
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: site test clean bench install serve

site: $(STAMP) $(NPM_STAMP)
	$(VENV)/bin/lora-site build

test: $(STAMP) $(NPM_STAMP)
	$(PY) -m pytest

install: $(STAMP)

# Re-install when the lock file or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The Node packages, exactly as package-lock.json pins them: mathjax-full renders the math to SVG
# at build time; mathjax and axe-core are the browser-side clients of tests/clients/. Without npm
# the build says how to install it, and the client tests skip locally (and fail under
# LORA_SITE_REQUIRE_CLIENTS=1).
$(NPM_STAMP): package-lock.json package.json
	@if command -v npm >/dev/null; then \
	    npm ci --no-audit --no-fund && touch $@; \
	else \
	    echo "npm not found: install Node.js and npm (the build renders its math with Node)"; \
	fi

# Live preview on http://127.0.0.1:8000/: rebuilds on every change to content/, templates/ or
# generator/ and reloads the open page. PORT=8001 make serve picks another port.
PORT ?= 8000
serve: $(STAMP) $(NPM_STAMP)
	$(VENV)/bin/lora-site serve --port $(PORT)

# Every benchmark in bench/, in sorted order. Benchmarks time things; tests never do.
bench: $(STAMP) $(NPM_STAMP)
	@set -e; for script in $$(ls bench/bench_*.py | LC_ALL=C sort); do \
	    echo "== $$script"; $(PY) $$script; \
	done

clean:
	rm -rf site .cache .pytest_cache
