# Each target creates .venv and installs the package into it when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# One OpenBLAS thread: the small matrix products of the tests and toy experiments run faster
# without threads, which spin when the cores are busy (docs/benchmarks.md).
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: reproduce test bench clean-venv

# The jax extra is installed so that the tests compare the JAX backend with C and Numba
# (without JAX those tests skip) and `make bench` times it.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,jax]'
	touch $(STAMP)

reproduce: $(STAMP)
	$(PY) reproduce/all.py

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/backends.py

clean-venv:
	rm -rf $(VENV)
