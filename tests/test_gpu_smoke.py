"""scripts/gpu_smoke.sh: its CPU dry run builds the micro inputs and passes the plan check;
on a CUDA machine (marker gpu) it runs the micro paper study in bf16 with vLLM rollouts."""

import json
import subprocess

import pytest
from conftest import ROOT, needs_shared


@pytest.mark.slow
@needs_shared
def test_dry_run_builds_inputs_and_passes_the_plan(tmp_path):
    proc = subprocess.run(["bash", "scripts/gpu_smoke.sh", "--dry-run", "--keep", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gpu_smoke: dry run passed" in proc.stdout
    assert "| train@grpo |" in proc.stdout  # the plan's bill for the micro run
    params = (tmp_path / "repo/params.yaml").read_text()
    assert "colocate" not in params and "device: cpu" in params
    config = json.loads((tmp_path / "inputs/base/config.json").read_text())
    assert config["model_type"] == "qwen2"


@pytest.mark.gpu
def test_gpu_smoke_runs_the_micro_study_on_cuda():
    proc = subprocess.run(["bash", "scripts/gpu_smoke.sh"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '"engine": "vllm"' in proc.stdout and "peak_gpu_gib_training" in proc.stdout
