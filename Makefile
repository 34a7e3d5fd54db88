# lowpaxos: every target sets itself up from a fresh clone (Python 3.11+, make, git).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test run fuzz mutants bench-sim clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

run: $(STAMP)
	$(PY) -m lowpaxos.cli sim --protocol lowpaxos --replicas 3 --clients 32 --ops 5000 --seed 1 --loss 0.01 --crashes 1

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests/test_stateful.py

mutants: $(STAMP)
	$(PY) tests/mutants/run.py

clean:
	rm -rf $(VENV) build *.egg-info
