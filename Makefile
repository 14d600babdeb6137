# The two commands of the README:
#   make experiment   set up, then `dvc repro` the default (toy) study
#   make test         set up, lint, then run the test suite (random order)
#   make test-fast    the suite without `slow` tests (under 2 minutes on 2 CPU cores)
SHELL := /bin/bash
VENV := $(CURDIR)/.venv/bin
# No network at run time: every model and dataset is local, and nothing phones home.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export DO_NOT_TRACK=1 VLLM_NO_USAGE_STATS=1 DVC_NO_ANALYTICS=1
export PATH := $(VENV):$(PATH)

.PHONY: setup experiment test test-fast lint bench
setup:
	@bash scripts/setup.sh

# The judge is trained first, then served once for every stage that grades (~25 s each).
experiment: setup
	dvc repro judge
	recall serve-judge -- dvc repro

lint: setup
	ruff check .

# Two pytest-xdist workers, one test file per work unit (a file's fixtures are built once),
# the longest files first (tests/conftest.py): about half the time of one process on 2 cores.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# --durations: every run prints its ten slowest tests, the suite's time budget at a glance
test: setup lint
	python -m pytest $(XDIST) --durations=10

test-fast: setup lint
	python -m pytest $(XDIST) -m "not slow and not gpu"

bench: setup
	python benchmarks/engines.py
