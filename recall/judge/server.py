"""Start and stop a vLLM OpenAI-compatible server for a judge model directory.

    with serve_judge("models/judge") as base_url:
        LLMJudge(cfg, base_url, "models/judge").judge(requests)

The server is a child process (`python -m vllm.entrypoints.openai.api_server`); it is
ready once /health answers 200, and it is terminated on exit, even on error.

Every stage that needs the judge would start its own server (~25 s on CPU). `recall
serve-judge -- dvc repro` (what `make experiment` runs) serves it once for the whole run
and tells the stages where, with the weights' digest, so that a stage never grades with a
judge other than the one on disk.
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

SHARED_URL_ENV = "RECALL_JUDGE_URL"
SHARED_DIGEST_ENV = "RECALL_JUDGE_DIGEST"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base_url: str, proc: subprocess.Popen | None, timeout_s: float,
                 what: str = "vLLM server") -> None:
    """Until `base_url`/health answers 200 (vLLM's and MLflow's servers both have it)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was "
                               f"ready; see its log")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} at {base_url} not healthy after {timeout_s:.0f}s")


def server_command(model_dir: str, port: int, compute=None) -> tuple[list[str], dict]:
    """The judge server's command line and extra environment. `compute` (the params'
    ComputeConfig) sets dtype, tensor-parallel size and memory share on GPUs
    (`recall.compute.judge_server_args`); None is allowed on a machine without CUDA only,
    where the server runs fp32 eager, the CPU's literals."""
    from recall.compute import judge_server_args, resolve

    if compute is None:
        import torch

        if torch.cuda.is_available():
            raise ValueError("a judge served on GPUs takes its dtype, tensor-parallel size and "
                             "memory share from params' compute.judge_engine: pass "
                             "params.compute")
        engine = ["--dtype", "float32", "--enforce-eager"]
        cpu = True
    else:
        res = resolve(compute)
        engine, cpu = judge_server_args(compute, res), res.device == "cpu"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--served-model-name", model_dir, "--host", "127.0.0.1", "--port", str(port),
           *engine, "--disable-log-stats"]
    # On CPU, the engine in the server's own process: no engine and worker processes to
    # spawn and import vLLM again (toy judge: ready in ~24 s instead of ~33 s, and no slower).
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"} if cpu else {}
    return cmd, env


def start_server(model_dir: str, port: int, log_path: Path, compute=None) -> subprocess.Popen:
    cmd, extra = server_command(model_dir, port, compute)
    env = {**extra, **os.environ}
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
                startup_timeout_s: float = 300, compute=None) -> Iterator[str]:
    """Serve `model_dir` with vLLM for the duration of the block; yields the base URL.
    `compute`: the params' ComputeConfig (see `server_command`)."""
    port = port or free_port()
    proc = start_server(model_dir, port, Path(log_path), compute)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, proc, startup_timeout_s)
        yield base_url
    finally:
        stop_server(proc)


def shared_server(model_dir: str) -> str | None:
    """The URL of the judge server `run_with_judge` started, or None when there is none.

    Raises when that server was started for other weights than `model_dir` holds now.
    """
    from recall.staging import weights_digest

    url = os.environ.get(SHARED_URL_ENV)
    if not url:
        return None
    served, here = os.environ.get(SHARED_DIGEST_ENV, ""), weights_digest(model_dir)
    if served != here:
        raise RuntimeError(f"{SHARED_URL_ENV}={url} serves judge weights {served or '(unknown)'},"
                           f" but {model_dir} holds {here}: the judge changed after the server "
                           f"started. Unset {SHARED_URL_ENV}, or rerun `make experiment`, which "
                           f"trains the judge before serving it")
    return url


def run_with_judge(cfg, cmd: list[str], compute=None) -> int:
    """Run `cmd` with one judge server for all of it, when `cfg` (a JudgeConfig) would make
    each stage serve `cfg.model` itself; otherwise just run it. Returns its exit code.
    `compute`: the params' ComputeConfig (see `server_command`)."""
    with judge_for_children(cfg, compute) as env:
        return subprocess.call(cmd, env=env)


@contextlib.contextmanager
def judge_for_children(cfg, compute=None) -> Iterator[dict[str, str]]:
    """The environment for processes started in the block: with one judge server for all of
    them (its URL and weights digest set, as `shared_server` reads them) when `cfg` would make
    each serve `cfg.model` itself; this process's environment otherwise."""
    from recall.staging import weights_digest

    if cfg.backend != "llm" or cfg.base_url or shared_server(cfg.model):
        yield dict(os.environ)
        return
    if not Path(cfg.model).is_dir():
        # Not an error (the command may build the judge), but each grading stage will then
        # start its own server, which costs a server start apiece: say so, and how to avoid it.
        print(f"recall serve-judge: {cfg.model} is not there yet, so this serves nothing and "
              f"each stage that grades starts its own judge server; run `dvc repro judge` "
              f"first to serve one for all of them", file=sys.stderr)
        yield dict(os.environ)
        return
    with serve_judge(cfg.model, compute=compute) as base_url:
        yield {**os.environ, SHARED_URL_ENV: base_url, SHARED_DIGEST_ENV: weights_digest(cfg.model)}
