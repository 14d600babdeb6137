# The two commands of the README:
#   make experiment   set up, then `dvc repro` the default (toy) study
#   make test         set up, then run the test suite
SHELL := /bin/bash
VENV := $(CURDIR)/.venv/bin
# No network at run time: every model and dataset is local, and nothing phones home.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export DO_NOT_TRACK=1 VLLM_NO_USAGE_STATS=1 DVC_NO_ANALYTICS=1
export PATH := $(VENV):$(PATH)

.PHONY: setup experiment test bench
setup:
	@bash scripts/setup.sh

# The judge is trained first, then served once for every stage that grades (~25 s each).
experiment: setup
	dvc repro judge
	recall serve-judge -- dvc repro

test: setup
	python -m pytest

bench: setup
	python benchmarks/engines.py
