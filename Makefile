# Set-up is automatic: every target creates .venv and installs
# requirements.txt when they are missing or older than requirements.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := runs/demo

.PHONY: help test demo data bench clean

help:
	@echo "make demo   generate the synthetic dataset and run the pipeline demo"
	@echo "make test   run the test suite"
	@echo "make bench  run the benchmarks in bench/ (JSON figures)"

$(VENV)/installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

test: $(VENV)/installed
	$(PY) -m pytest -q tests

data: $(VENV)/installed
	$(PY) -m datasets.synthetic $(DEMO)/data --tiles 12 --dates 8 --size 48 --naming l2a --seed 0

demo: data
	$(PY) -m datasets.summary --config configs/cloudtran_core_train.py:tiny

bench: $(VENV)/installed
	$(PY) bench/input_pipeline.py

clean:
	rm -rf $(DEMO)
