"""Start and stop a vLLM OpenAI-compatible server for a judge model directory.

    with serve_judge("models/judge") as base_url:
        LLMJudge(cfg, base_url, "models/judge").judge(requests)

The server is a child process (`python -m vllm.entrypoints.openai.api_server`); it is
ready once /health answers 200, and it is terminated on exit, even on error.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base_url: str, proc: subprocess.Popen | None, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"vLLM server exited with code {proc.returncode} before it was "
                               f"ready; see its log")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"vLLM server at {base_url} not healthy after {timeout_s:.0f}s")


def start_server(model_dir: str, port: int, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--served-model-name", model_dir, "--host", "127.0.0.1", "--port", str(port),
           "--dtype", "float32", "--enforce-eager", "--disable-log-stats"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # A new session so that stopping it also stops vLLM's engine process.
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def stop_server(proc: subprocess.Popen, grace_s: float = 20) -> None:
    import signal

    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def serve_judge(model_dir: str, port: int | None = None, log_path: str | Path = "logs/judge_server.log",
                startup_timeout_s: float = 300) -> Iterator[str]:
    """Serve `model_dir` with vLLM for the duration of the block; yields the base URL."""
    port = port or free_port()
    proc = start_server(model_dir, port, Path(log_path))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, proc, startup_timeout_s)
        yield base_url
    finally:
        stop_server(proc)


@contextlib.contextmanager
def open_judge(cfg, on_unreachable: str = "raise") -> Iterator[object]:
    """The judge that `cfg` (a JudgeConfig) names, with a vLLM server for as long as needed.

    rule: the normalised-match judge. llm: `cfg.base_url` if given, else `cfg.model` served
    here for the duration of the block.
    """
    from recall.judge import RuleJudge
    from recall.llm_judge import LLMJudge

    if cfg.backend == "rule":
        yield RuleJudge()
    elif cfg.base_url:
        yield LLMJudge(cfg, cfg.base_url, cfg.model, on_unreachable=on_unreachable)
    else:
        with serve_judge(cfg.model) as base_url:
            yield LLMJudge(cfg, base_url, cfg.model, on_unreachable=on_unreachable)
