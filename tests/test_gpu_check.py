"""scripts/gpu_check.sh --cpu: every phase of the GPU check runs on the micro model, so the
check cannot rot between GPU runs; the verdict logic holds a measured peak to the band."""

import importlib.util
import json
import subprocess

import pytest
from conftest import ROOT


def _check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_check_runs_every_phase_and_writes_the_json(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    phases = report["phases"]
    assert {n: p["verdict"] for n, p in phases.items()} == {
        "grpo": "ran", "evaluation": "ran", "sft": "ran", "dpo": "ran"}
    # GRPO: 32 prompts at 16 per step, one epoch; SFT and DPO: 64 items at 32 per step
    assert (phases["grpo"]["steps"], phases["sft"]["steps"], phases["dpo"]["steps"]) == (2, 2, 2)
    assert phases["evaluation"]["samples"] == 256 * 8
    assert all(phases[n]["estimate_gib"] > 0 for n in ("grpo", "sft", "dpo"))
    assert report["device"] == "cpu" and report["versions"]["trl"] and report["gpu"] is None
    assert "gpu_check: passed" in proc.stdout


def test_a_peak_outside_the_band_fails_and_an_error_is_a_failure():
    check = _check_module()
    low, high = check.RATIO_BAND
    assert check.verdict({"peak_gib": 10.0, "estimate_gib": 10.0 / (low + high) * 2}) == "pass"
    assert check.verdict({"peak_gib": 10.0, "estimate_gib": 10.0 / (high * 1.1)}) == \
        "ratio outside band"
    assert check.verdict({"peak_gib": 1.0, "estimate_gib": 1.0 / (low * 0.9)}) == \
        "ratio outside band"
    assert check.verdict({"error": "RuntimeError: CUDA out of memory"}) == "failed"
    assert check.verdict({"peak_gib": None, "estimate_gib": 1.0}) == "ran"
