# Two commands for a new user: `make demo` and `make test`. Each builds .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install install-dev bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
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

test: $(VENV)/.installed-dev
	$(PY) -m pytest

# featx's grid search against scikit-learn's GridSearchCV (about 25 minutes on 2 cores;
# BENCH_ARGS=--quick for a 1-minute run). Run alone: it uses every core.
bench: $(VENV)/.installed-dev
	$(PY) benchmarks/fit_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
