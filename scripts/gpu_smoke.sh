#!/usr/bin/env bash
# The paper profile's micro run on CUDA (bf16, vLLM rollouts and evaluation): prints peak
# training memory and samples/s. `--dry-run` checks everything short of training, on CPU.
#   bash scripts/gpu_smoke.sh [--dry-run]
# On a GPU machine, install requirements-gpu.txt first (the CUDA build of vLLM).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DO_NOT_TRACK=1 VLLM_NO_USAGE_STATS=1 DVC_NO_ANALYTICS=1
PY=${PYTHON:-$PWD/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
# Absolute: the script runs `recall` and `dvc` from a scratch directory.
PATH="$(cd "$(dirname "$PY")" && pwd):$PATH" "$PY" benchmarks/gpu_smoke.py "$@"
