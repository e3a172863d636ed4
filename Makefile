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
	demo-evaluate demo-sheets demo-geotiff reproduce-small small-data \
	small-train-core small-train-upsampler small-sample small-evaluate \
	small-sheets small-curve small-geotiff clean-small demo-selfcheck small-classical \
	small-holdout-v1

help:
	@echo "make demo    the whole method end to end on a synthetic dataset"
	@echo "make reproduce-small  the results recipe (:small models, ~3 h on a 2-core CPU)"
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

# The suite in TEST_WORKERS processes (pytest-xdist), a test file per
# process at a time, the longest files first (tests/conftest.py): about
# 700 s with 2 on the 2-core VM (2026-12-08, quiet machine; 800-977 s
# before, when the longest files ran last). TEST_WORKERS=0 runs it in
# this process.
TEST_WORKERS ?= 2
test: $(VENV)/installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
	  --no-loadscope-reorder --durations=15 tests

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
	$(PY) predict.py --core_config $(CORE_TEST) --upsampler_config $(UP_TEST) \
	  --core_logdir $(CORE) --upsampler_logdir $(UP) \
	  --inputs '$(GEO)/scene/images/*.tif' --scl '$(GEO)/scene/scl/*.tif' \
	  --overlap 8 --batch_size 8 --overwrite --out $(GEO)/clear.tif

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
	$(PY) bench/precision.py
	$(PY) bench/input_pipeline.py
	$(PY) bench/train_step.py
	$(PY) bench/train_loop.py
	$(PY) bench/sampler.py
	$(PY) bench/predict.py

clean:
	rm -rf $(DEMO)

# ---------------------------------------------------------------------------
# make reproduce-small: the results recipe (docs/reproduce_small.md). The
# benchmark dataset, the :small core and upsampler, samples of the valid
# split (every choice) and of the holdout split (the final table), results
# tables, contact sheets and learning curves, under runs/small/. Each stage
# leaves a stamp in runs/small/.done and is skipped when it is newer than
# what it reads; a killed stage resumes (training and sampling continue from
# their last checkpoint / batch). Stamps and sample directories are named
# by the training steps, so a rerun with more steps continues training and
# samples into new directories. Wall time per stage:
# runs/small/stage_times.txt.
SMALL := runs/small
SMALL_DATA := $(SMALL)/data
SMALL_CORE := $(SMALL)/core
SMALL_UP := $(SMALL)/upsampler
DONE := $(SMALL)/.done
SMALL_SEED ?= 1
# Version of the dataset (docs/benchmark_v2.md); 1 is the one of the results
# published before version 2 (docs/small_results.md).
SMALL_BENCH_VERSION ?= 2
# Extra tools.recipe_dataset arguments, e.g. "--train 24 --valid 8 --holdout 8".
BENCH_ARGS ?=
# Chosen on the valid split (docs/reproduce_small.md, "Step counts").
SMALL_CORE_STEPS ?= 300
SMALL_UP_STEPS ?= 1000
# Outputs sampled per held-out split (each split has 48 tiles by default).
SMALL_OUTPUTS ?= 48
S_CORE_TRAIN := configs/cloudtran_core_train.py:small
S_CORE_TEST := configs/cloudtran_core_test.py:small
S_UP_TRAIN := configs/upsampler_train.py:small
S_UP_TEST := configs/upsampler_test.py:small
# What the samples came from: core steps; core and upsampler steps.
C_TAG := $(SMALL_CORE_STEPS)
U_TAG := $(SMALL_CORE_STEPS)-$(SMALL_UP_STEPS)
# Sample directories of <split> (valid, holdout); the parallel head's get
# _parallel appended by sample.py.
core_samples = $(SMALL_CORE)/samples_core_$(1)_$(C_TAG)
up_samples = $(SMALL_UP)/samples_sup_$(1)_$(U_TAG)
# The :small configs read runs/small/data; these follow SMALL=<dir> too.
split_data = --$(1).data_dir=$(2)/videos_final_$(3) \
  --$(1).mask_dir=$(2)/masks_final_$(3) --$(1).jsonf=$(2)/$(3).json
TRAIN := $(call split_data,config,$(SMALL_DATA),trainset)
DATA_valid := $(call split_data,config,$(SMALL_DATA),testset)
DATA_holdout := $(call split_data,config,$(SMALL_DATA)/holdout,testset)
# The holdout split of benchmark version 1 (make small-holdout-v1).
SMALL_DATA_V1 := $(SMALL)/data_v1
DATA_holdout_v1 := $(call split_data,config,$(SMALL_DATA_V1)/holdout,testset)
# $(call stage_no,<split>,<valid's>,<holdout's>): a split's stage number
# (the version 1 holdout's are extra stages).
stage_no = $(if $(filter valid,$(1)),$(2),$(if $(filter holdout,$(1)),$(3),extra))
OUTPUTS := --config.sample.num_outputs=$(SMALL_OUTPUTS)
# $(call stage,k/9 what): a banner; $(call staged,stamp): its wall time and
# stamp.
stage = @mkdir -p $(DONE) && date +%s > $(DONE)/.start && \
  echo "==> reproduce-small [$(1)] $$(date '+%H:%M:%S')"
staged = @echo "$(1) $$(( $$(date +%s) - $$(cat $(DONE)/.start) )) s" | \
  tee -a $(SMALL)/stage_times.txt && touch $(DONE)/$(1)

reproduce-small: $(VENV)/installed
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory small-data small-train-core \
	  small-train-upsampler small-sample small-evaluate small-sheets \
	  small-curve && \
	echo "reproduce-small done in $$(( $$(date +%s) - start )) s. Outputs:" && \
	echo "  dataset          $(SMALL_DATA) (train, valid = testset, holdout/)" && \
	echo "  runs             $(SMALL_CORE), $(SMALL_UP)" && \
	echo "  samples          $(call core_samples,<split>)[_parallel], $(call up_samples,<split>)" && \
	echo "  results (valid)  $(SMALL)/eval_valid/results.md" && \
	echo "  results (final)  $(SMALL)/eval_holdout/results.md" && \
	echo "  contact sheets   $(SMALL)/sheets_holdout" && \
	echo "  learning curves  $(SMALL)/learning_curve.png (valid)" && \
	echo "  stage wall times $(SMALL)/stage_times.txt" && \
	echo "Holdout split (the final table):" && \
	cat $(SMALL)/eval_holdout/results.md

small-data: $(DONE)/data
small-train-core: $(DONE)/train-core-$(C_TAG)
small-train-upsampler: $(DONE)/train-upsampler-$(SMALL_UP_STEPS)
small-sample: $(DONE)/sample-valid-$(U_TAG) $(DONE)/sample-holdout-$(U_TAG)
small-evaluate: $(DONE)/evaluate-valid-$(U_TAG) \
  $(DONE)/evaluate-holdout-$(U_TAG)
small-sheets: $(DONE)/sheets-$(U_TAG)
small-curve: $(DONE)/curve-$(U_TAG)

$(DONE)/data: | $(VENV)/installed
	$(call stage,1/9 benchmark dataset)
	rm -rf $(SMALL_DATA)
	$(PY) -m tools.recipe_dataset $(SMALL_DATA) --seed $(SMALL_SEED) \
	  --version $(SMALL_BENCH_VERSION) $(BENCH_ARGS)
	$(call staged,data)

$(DONE)/train-core-$(C_TAG): $(DONE)/data
	$(call stage,2/9 train core to step $(SMALL_CORE_STEPS))
	$(PY) run.py --config $(S_CORE_TRAIN) --mode=train --logdir $(SMALL_CORE) \
	  $(CPU) $(TRAIN) --config.max_train_steps=$(SMALL_CORE_STEPS) \
	  --steps_per_summaries=50
	$(call staged,train-core-$(C_TAG))

$(DONE)/train-upsampler-$(SMALL_UP_STEPS): $(DONE)/data
	$(call stage,3/9 train upsampler to step $(SMALL_UP_STEPS))
	$(PY) run.py --config $(S_UP_TRAIN) --mode=train --logdir $(SMALL_UP) \
	  $(CPU) $(TRAIN) --config.max_train_steps=$(SMALL_UP_STEPS) \
	  --steps_per_summaries=50
	$(call staged,train-upsampler-$(SMALL_UP_STEPS))

# Sampling a split (valid, holdout; both are the valid subset of their
# dataset root): the core's parallel head and autoregressive argmax, then
# the upsampler on the autoregressive output.
$(DONE)/sample-%-$(U_TAG): $(DONE)/train-core-$(C_TAG) \
  $(DONE)/train-upsampler-$(SMALL_UP_STEPS)
	$(call stage,$(call stage_no,$*,4/9,5/9) sample the $* split)
	$(PY) sample.py --config $(S_CORE_TEST) --mode=sample_valid \
	  --logdir $(SMALL_CORE) $(OUTPUTS) $(DATA_$*) \
	  --config.sample.log_dir=$(notdir $(call core_samples,$*)) \
	  --config.sample.only_parallel=True
	$(PY) sample.py --config $(S_CORE_TEST) --mode=sample_valid \
	  --logdir $(SMALL_CORE) $(OUTPUTS) $(DATA_$*) \
	  --config.sample.log_dir=$(notdir $(call core_samples,$*))
	$(PY) sample.py --config $(S_UP_TEST) --mode=sample_valid \
	  --logdir $(SMALL_UP) $(OUTPUTS) $(DATA_$*) \
	  --config.sample.log_dir=$(notdir $(call up_samples,$*)) \
	  --config.sample.gen_data_dir=$(call core_samples,$*)
	$(call staged,sample-$*-$(U_TAG))

# The flags of demo-evaluate, per split.
$(DONE)/evaluate-%-$(U_TAG): $(DONE)/sample-%-$(U_TAG)
	$(call stage,$(call stage_no,$*,6/9,7/9) results of the $* split)
	$(PY) evaluate.py --config $(S_CORE_TEST) $(DATA_$*) --subset=valid \
	  --split_name="$* split" --out $(SMALL)/eval_$* \
	  --samples "core (parallel)=$(call core_samples,$*)_parallel" \
	  --samples "core (autoregressive)=$(call core_samples,$*)" \
	  --samples "upsampler=$(call up_samples,$*)"
	$(call staged,evaluate-$*-$(U_TAG))

$(DONE)/sheets-$(U_TAG): $(DONE)/sample-holdout-$(U_TAG)
	$(call stage,8/9 contact sheets of the holdout split)
	$(PY) -m tools.contact_sheet --config $(S_UP_TEST) $(DATA_holdout) \
	  --core $(call core_samples,holdout) \
	  --upsampled $(call up_samples,holdout) --out $(SMALL)/sheets_holdout
	$(call staged,sheets-$(U_TAG))

$(DONE)/curve-$(U_TAG): $(DONE)/train-core-$(C_TAG) \
  $(DONE)/train-upsampler-$(SMALL_UP_STEPS)
	$(call stage,9/9 learning curves on the valid split)
	$(PY) -m tools.learning_curve --core_config $(S_CORE_TEST) \
	  $(call split_data,core_config,$(SMALL_DATA),testset) \
	  --core_logdir $(SMALL_CORE) --upsampler_config $(S_UP_TEST) \
	  $(call split_data,upsampler_config,$(SMALL_DATA),testset) \
	  --upsampler_logdir $(SMALL_UP) --num_examples $(SMALL_OUTPUTS) \
	  --out $(SMALL)/learning_curve.png
	$(call staged,curve-$(U_TAG))

# predict.py --draws 8 with the :small models on a synthetic scene (after
# reproduce-small): the median image, its spread and their quicklooks.
SMALL_GEO := $(SMALL)/geotiff
small-geotiff: $(VENV)/installed
	$(PY) -m tools.synthetic_geotiff $(SMALL_GEO)/scene --width 256 \
	  --height 256 --dates 6 --seed 0
	rm -rf $(SMALL_GEO)/clear*
	$(PY) predict.py --core_config $(S_CORE_TEST) --upsampler_config \
	  $(S_UP_TEST) --core_logdir $(SMALL_CORE) --upsampler_logdir $(SMALL_UP) \
	  --inputs '$(SMALL_GEO)/scene/images/*.tif' \
	  --scl '$(SMALL_GEO)/scene/scl/*.tif' --overlap 8 --draws 8 \
	  --out $(SMALL_GEO)/clear.tif

# The classical fills alone (evaluate.py without samples) on both held-out
# splits of the recipe's dataset: no model needed.
small-classical: $(DONE)/data
	$(foreach split,valid holdout,$(PY) evaluate.py --config $(S_CORE_TEST) \
	  $(DATA_$(split)) --subset=valid --split_name="$(split) split" \
	  --out $(SMALL)/eval_classical_$(split) &&) true
	cat $(SMALL)/eval_classical_holdout/results.md

# The recipe's models (trained on version $(SMALL_BENCH_VERSION)) on the
# holdout split of benchmark version 1 too, after reproduce-small: the same
# seed's dataset as published (docs/benchmark_v2.md), its holdout sampled
# and scored as the recipe's (every classical row beside the models).
small-holdout-v1: $(DONE)/evaluate-holdout_v1-$(U_TAG)
	cat $(SMALL)/eval_holdout_v1/results.md

$(DONE)/data-v1: | $(VENV)/installed
	$(call stage,extra benchmark dataset version 1)
	rm -rf $(SMALL_DATA_V1)
	$(PY) -m tools.recipe_dataset $(SMALL_DATA_V1) --seed $(SMALL_SEED) \
	  --version 1 $(BENCH_ARGS)
	$(call staged,data-v1)

$(DONE)/sample-holdout_v1-$(U_TAG): $(DONE)/data-v1

clean-small:
	rm -rf $(SMALL)
