# Set-up is automatic: every target creates .venv and installs
# requirements.txt when they are missing or older than requirements.txt.
# `make demo` runs the whole method on a synthetic dataset; each stage is a
# target of its own (make demo-data, demo-train-core, ...) to rerun one.
# The code needs Python >= 3.11: python3.11 when it is installed, else python3
# (checked below); `make PYTHON=/path/to/python3.12` picks another.
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
NEEDS_311 := import sys; sys.exit(sys.version_info < (3, 11))
VENV := .venv
PY := $(VENV)/bin/python
DEMO := runs/demo
DATA := $(DEMO)/data
CORE := $(DEMO)/core
UP := $(DEMO)/upsampler
GEO := $(DEMO)/geotiff
CPU := --accelerator_type=CPU
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Training steps of the demo models (the :tiny configs, 16 px core).
CORE_STEPS ?= 2000
UP_STEPS ?= 1500
CORE_TRAIN := configs/cloudtran_core_train.py:tiny
CORE_TEST := configs/cloudtran_core_test.py:tiny
UP_TRAIN := configs/upsampler_train.py:tiny
UP_TEST := configs/upsampler_test.py:tiny

.PHONY: help test demo bench clean demo-data demo-train-core \
	demo-train-upsampler demo-eval demo-sample-core demo-sample-upsampler \
	demo-evaluate demo-sheets demo-geotiff demo-selfcheck

help:
	@echo "make demo    the whole method end to end on a synthetic dataset"
	@echo "make test    the test suite"
	@echo "make bench   the benchmarks in bench/ (JSON figures)"

$(VENV)/installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -c '$(NEEDS_311)' || { echo "error: Python \
	3.11 or newer is needed, $(PYTHON) is $$($(PYTHON) --version 2>&1); \
	install python3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c '$(NEEDS_311)' || { echo "error: $(VENV) runs \
	$$($(PY) --version 2>&1), Python 3.11 or newer is needed; remove $(VENV) \
	and run make again" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

test: $(VENV)/installed
	$(PY) -m pytest -q tests

demo: $(VENV)/installed
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory demo-data demo-train-core \
	  demo-train-upsampler demo-eval demo-sample-core demo-sample-upsampler \
	  demo-evaluate demo-sheets demo-geotiff && \
	echo "Demo done in $$(( $$(date +%s) - start )) s. Outputs:" && \
	echo "  dataset         $(DATA)" && \
	echo "  core run        $(CORE) (checkpoints, TensorBoard summaries)" && \
	echo "  upsampler run   $(UP)" && \
	echo "  core samples    $(CORE)/samples_core_valid, samples_core_valid_parallel, samples_core_test" && \
	echo "  upsampled       $(UP)/samples_sup_valid" && \
	echo "  results tables  $(DEMO)/results.md (.csv, .json: every row, the config, checkpoints)" && \
	echo "  contact sheets  $(DEMO)/sheets" && \
	echo "  GeoTIFF scene   $(GEO)/scene (uint16 reflectance, SCL, UTM 32N, 10 m)" && \
	echo "  cloud-free      $(GEO)/clear.tif, fill map $(GEO)/clear_fill.tif" && \
	echo "  quicklook       $(GEO)/clear.png" && \
	cat $(DEMO)/results.md

demo-data: $(VENV)/installed
	$(PY) -m tools.synthetic $(DATA) --tiles 12 --dates 8 --size 48 --naming l2a --seed 0

demo-train-core: $(VENV)/installed
	$(PY) run.py --config $(CORE_TRAIN) --mode=train --logdir $(CORE) $(CPU) \
	  --config.max_train_steps=$(CORE_STEPS) --steps_per_summaries=100

demo-train-upsampler: $(VENV)/installed
	$(PY) run.py --config $(UP_TRAIN) --mode=train --logdir $(UP) $(CPU) \
	  --config.max_train_steps=$(UP_STEPS) --steps_per_summaries=100

demo-eval: $(VENV)/installed
	$(PY) run.py --config $(CORE_TEST) --mode=eval_valid --logdir $(CORE) $(CPU)

demo-sample-core: $(VENV)/installed
	$(PY) sample.py --config $(CORE_TEST) --mode=sample_valid --logdir $(CORE)
	$(PY) sample.py --config $(CORE_TEST) --mode=sample_valid --logdir $(CORE) \
	  --config.sample.only_parallel=True
	$(PY) sample.py --config $(CORE_TEST) --mode=sample_test --logdir $(CORE)

demo-sample-upsampler: $(VENV)/installed
	$(PY) sample.py --config $(UP_TEST) --mode=sample_valid --logdir $(UP) \
	  --config.sample.gen_data_dir=$(CORE)/samples_core_valid

demo-evaluate: $(VENV)/installed
	$(PY) evaluate.py --config $(CORE_TEST) --subset=valid --out $(DEMO) \
	  --samples "core (parallel)=$(CORE)/samples_core_valid_parallel" \
	  --samples "core (autoregressive)=$(CORE)/samples_core_valid" \
	  --samples "upsampler=$(UP)/samples_sup_valid"

demo-sheets: $(VENV)/installed
	$(PY) -m tools.contact_sheet --config $(UP_TEST) \
	  --core $(CORE)/samples_core_valid --upsampled $(UP)/samples_sup_valid \
	  --out $(DEMO)/sheets

# A dated GeoTIFF scene (larger than a 32 px tile, not a multiple of it),
# then predict.py with the demo's models restores its last date.
demo-geotiff: $(VENV)/installed
	$(PY) -m tools.synthetic_geotiff $(GEO)/scene --width 600 --height 520 \
	  --dates 6 --seed 0
	rm -rf $(GEO)/clear.tif $(GEO)/clear_fill.tif $(GEO)/clear.png \
	  $(GEO)/clear.tif.work
	$(PY) predict.py --core_config $(CORE_TEST) --upsampler_config $(UP_TEST) \
	  --core_logdir $(CORE) --upsampler_logdir $(UP) \
	  --inputs '$(GEO)/scene/images/*.tif' --scl '$(GEO)/scene/scl/*.tif' \
	  --overlap 8 --batch_size 8 --out $(GEO)/clear.tif

# How well the demo's models fill the demo scene (after demo-geotiff).
demo-selfcheck: $(VENV)/installed
	rm -rf $(GEO)/selfcheck $(GEO)/selfcheck.work
	$(PY) -m tools.selfcheck --core_config $(CORE_TEST) \
	  --upsampler_config $(UP_TEST) --core_logdir $(CORE) \
	  --upsampler_logdir $(UP) --inputs '$(GEO)/scene/images/*.tif' \
	  --scl '$(GEO)/scene/scl/*.tif' --overlap 8 --batch_size 8 --pairs 4 \
	  --out $(GEO)/selfcheck
	cat $(GEO)/selfcheck/selfcheck.md

bench: $(VENV)/installed
	$(PY) bench/input_pipeline.py
	$(PY) bench/train_step.py
	$(PY) bench/train_loop.py
	$(PY) bench/sampler.py
	$(PY) bench/predict.py

clean:
	rm -rf $(DEMO)
