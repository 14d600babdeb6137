#!/usr/bin/env bash
# The paper path's trainers and evaluation engine on one GPU, measured against `recall plan`
# (benchmarks/gpu_check.py says what runs). For a machine with PyTorch, transformers and
# accelerate but no network and no vLLM/TRL/datasets:
#   bash scripts/gpu_check.sh --prepare wheels    # here, with network: the wheel folder
#   bash scripts/gpu_check.sh [--out FILE]        # there, from the checkout with wheels/
#   bash scripts/gpu_check.sh --cpu               # anywhere: the micro check on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DO_NOT_TRACK=1
# What the training path imports beyond the image (TRL, datasets and its pure-Python
# dependencies, dacite), at the versions requirements.lock pins, as CPython 3.12 wheels.
WHEELS="trl datasets dacite dill xxhash multiprocess fsspec aiohttp aiohappyeyeballs aiosignal
attrs frozenlist multidict propcache yarl"
PY=${PYTHON:-$PWD/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)

if [ "${1:-}" = "--prepare" ]; then
  dest=${2:?usage: gpu_check.sh --prepare DIR}
  mkdir -p "$dest"
  pins=$(for w in $WHEELS; do grep -i "^$w==" requirements.lock || { echo "gpu_check: $w is not pinned in requirements.lock" >&2; exit 1; }; done)
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --dest "$dest" $pins
  ls -l "$dest"
  bytes=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
  echo "gpu_check: $(ls "$dest"/*.whl | wc -l) wheels, $((bytes / 1024)) KiB (limit 65536 KiB)"
  [ "$bytes" -le $((64 * 1024 * 1024)) ] || { echo "gpu_check: over 64 MiB" >&2; exit 1; }
  exit 0
fi

if [ -d wheels ] && ! "$PY" -c "import trl" 2>/dev/null; then
  # the image's own torch and transformers stay; only what it lacks goes on the path
  "$PY" -m pip install --quiet --no-index --no-deps --target .gpu_site wheels/*.whl
  export PYTHONPATH="$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" benchmarks/gpu_check.py "$@"
