# make run        the main job: fetch LFW, crop every face, train the cpu model (a budget of
#                 40 min of training on any CPU, resumable) as models/make-cpu, evaluate it,
#                 then serve the webcam dashboard
#                 on 127.0.0.1:8866 (each step skips what is already done; PRESET=smoke|cpu|cpu-v1|gpu,
#                 or FACELIB_PRESET, picks the preset and the run, make-<preset>; RUN=name and
#                 PORT=n choose others)
# make dashboard  only serve the dashboard
# make tensorboard  serve the training logs of every run under models/ (each loss, validation
#                 AUC, learning rate, images/s; the validation people's embedding projector)
#                 on 127.0.0.1:6006 (TB_PORT=n chooses another)
# make doctor     this machine, the math facelib picks for it, and each preset's plan
# make test   lint, format check, import layers, unit + integration tests, notebooks (nbval)
# make test-unit  only the unit tests: no LFW mirror, no TensorFlow in the tests themselves (under a minute)
# make bench  benchmarks; figures go to docs/benchmarks.md
# Every target creates .venv and installs facelib into it first, when needed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

# Use the offline mirror of this workplace when it is there (CI, developers).
MIRROR_DIR := $(abspath ../shared/mirror)
ifneq ($(wildcard $(MIRROR_DIR)/lfw),)
export FACELIB_MIRROR ?= $(MIRROR_DIR)
endif

# The preset make run trains with, and the model it trains and the dashboard serves (a
# run name under models/): named after the preset, so that a model of one preset is
# never taken for another's.
PRESET ?= $(or $(FACELIB_PRESET),cpu)
RUN ?= make-$(PRESET)
# The dashboard's port on 127.0.0.1.
PORT ?= 8866
# TensorBoard's port on 127.0.0.1.
TB_PORT ?= 6006

.PHONY: install run dashboard tensorboard doctor check-wheels test test-unit lint bench clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The plan first, before installing (it needs only Python 3.9+; an older one skips
# it): the machine found, the precision and budget it sets, the time expected.
run:
	-@$(PYTHON) -m facelib.app.doctor --no-timing --preset $(PRESET)
	@$(MAKE) --no-print-directory install
	$(BIN)/facelib fetch
	$(BIN)/facelib preprocess --preset $(PRESET)
	$(BIN)/facelib train --resume --name $(RUN) --preset $(PRESET)
	FACELIB_PRESET=$(PRESET) $(BIN)/facelib evaluate --if-needed --model $(RUN)
	$(MAKE) dashboard

# The websocket setting: a picture past tornado's 10 MiB default would close the
# kernel's connection instead of getting the dashboard's own "too large" message (8 MB).
dashboard: install
	@echo "dashboard: open http://127.0.0.1:$(PORT) in your browser (Ctrl-C stops it)"
	FACELIB_MODEL=$(RUN) FACELIB_ROLE=verify $(BIN)/voila notebooks/04_webcam_dashboard.ipynb --port=$(PORT) --no-browser --Voila.ip=127.0.0.1 \
		--Voila.tornado_settings='{"websocket_max_message_size": 104857600}'

# The models folder as facelib sees it ($$FACELIB_HOME/models, else the project's): each run
# writes its logs to models/<run>/logs/ (facelib.training.tensorboard_logs).
tensorboard: install
	@echo "tensorboard: open http://127.0.0.1:$(TB_PORT) in your browser (Ctrl-C stops it)"
	$(BIN)/tensorboard --logdir "$$($(BIN)/python -c 'from facelib.core import config; print(config.models_dir())')" \
		--host 127.0.0.1 --port $(TB_PORT)

doctor: install
	$(BIN)/facelib doctor

# Resolution only, nothing installed: the TensorFlow wheel pip would take on each
# platform and Python that pyproject.toml admits (needs the package index).
check-wheels: install
	$(BIN)/python bench/check_wheels.py

# lint-imports: the layers and no-circle contracts in pyproject.toml (README, Contributing).
lint: install
	$(BIN)/ruff check facelib tests bench
	$(BIN)/ruff format --check facelib tests bench
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

# The markers are conftest.py's: `mirror` (LFW) and `tensorflow`.
test-unit: install
	$(BIN)/pytest -m "not mirror and not tensorflow" tests

bench: install
	$(BIN)/python bench/math_speed.py
	$(BIN)/python bench/preprocess_speed.py
	$(BIN)/python bench/train_speed.py --run models/$(RUN)
	$(BIN)/python bench/verify_speed.py --model models/$(RUN)
	$(BIN)/python bench/export_runtimes.py --model models/$(RUN)
	$(BIN)/python bench/compare_models.py models/$(RUN) --tta
	$(BIN)/python bench/open_set.py --model $(RUN)
	$(BIN)/python bench/dashboard_latency.py --model models/$(RUN)

clean-venv:
	rm -rf $(VENV)
