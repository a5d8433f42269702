# The two commands a new user needs:
#   make run   - set up, then train UNet and ResNet34-UNet and print their test Dice side by side
#   make test  - set up, then run the unit tests (both tiers) and the notebooks (nbval strict and lax, quick mode)
# Both create a virtual environment in .venv on first use (override with VENV=...).

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: run test setup bench clean mutation

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $@

run: setup
	$(PY) -m petlib.run

test: setup
	# Both tiers (plain `pytest` runs the fast one only); the 15 slowest tests listed at the end.
	$(PY) -m pytest -m "slow or not slow" --durations=15 tests
	# notebooks/conftest.py forces quick mode: 16 images, 2 epochs, a temp folder.
	$(PY) -m pytest --nbval -p no:randomly notebooks/
	$(PY) -m pytest --nbval-lax -p no:randomly notebooks/

bench: setup
	$(PY) -m pip install -e ".[bench]"
	$(PY) -m petlib.research.bench

# Mutation testing of the core against the fast tests (tests/README.md; not part of CI: hours on 2 cores).
# One thread per test process: mutmut forks its workers, and two of them share the cores. A mutant can
# make a test write its disk cache into mutmut's copy of the sample, which fails the next run's clean
# check: each run starts without it.
mutation: setup
	rm -rf mutants/dataset/oxford-iiit-pet-sample/.cache
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut export-cicd-stats
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) runs
