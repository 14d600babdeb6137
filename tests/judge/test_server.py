"""One judge server for a whole run: `run_with_judge` serves it, `open_judge` finds it."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from recall.judge.server import SHARED_DIGEST_ENV, SHARED_URL_ENV, run_with_judge, shared_server
from recall.staging import weights_digest


def _model_dir(tmp_path, weights: bytes):
    d = tmp_path / "judge"
    d.mkdir(exist_ok=True)
    (d / "model.safetensors").write_bytes(weights)
    return d


def test_shared_server_needs_the_url(tmp_path, monkeypatch):
    monkeypatch.delenv(SHARED_URL_ENV, raising=False)
    assert shared_server(str(_model_dir(tmp_path, b"w1"))) is None


def test_shared_server_checks_the_weights(tmp_path, monkeypatch):
    model = _model_dir(tmp_path, b"w1")
    monkeypatch.setenv(SHARED_URL_ENV, "http://127.0.0.1:9")
    monkeypatch.setenv(SHARED_DIGEST_ENV, weights_digest(model))
    assert shared_server(str(model)) == "http://127.0.0.1:9"
    # The judge retrained after the server started: grading with the old one is refused.
    _model_dir(tmp_path, b"w2")
    with pytest.raises(RuntimeError, match=rf"serves judge weights \w+, but {model} holds"):
        shared_server(str(model))


def test_rule_judge_runs_the_command_without_a_server(micro_params, monkeypatch):
    monkeypatch.delenv(SHARED_URL_ENV, raising=False)
    cfg = dataclasses.replace(micro_params.judge, backend="rule")
    code = run_with_judge(cfg, [sys.executable, "-c",
                                f"import os, sys; sys.exit(7 if '{SHARED_URL_ENV}' in os.environ "
                                f"else 5)"])
    assert code == 5


def test_a_judge_not_yet_built_is_not_served_and_the_user_is_told_why(micro_params, tmp_path,
                                                                      monkeypatch, capfd):
    monkeypatch.delenv(SHARED_URL_ENV, raising=False)
    cfg = dataclasses.replace(micro_params.judge, backend="llm", base_url="",
                              model=str(tmp_path / "models/judge"))
    code = run_with_judge(cfg, [sys.executable, "-c",
                                f"import os, sys; sys.exit(7 if '{SHARED_URL_ENV}' in os.environ "
                                f"else 5)"])
    assert code == 5
    assert (f"{tmp_path}/models/judge is not there yet, so this serves nothing and each stage "
            "that grades starts its own judge server; run `dvc repro judge` first"
            in capfd.readouterr().err)


def test_one_server_grades_for_the_whole_command(judge_server, monkeypatch, capfd):
    from recall.judge.client import LLMJudge
    from recall.judge.interface import JudgeRequest

    base_url, model_dir, world, params = judge_server
    monkeypatch.delenv(SHARED_URL_ENV, raising=False)
    cfg = dataclasses.replace(params.judge, backend="llm", base_url="", model=model_dir,
                              fast_path=False, cache="")
    item = next(it for it in world.items if it.split == "test")
    requests = [JudgeRequest(item.question, tuple(item.answers), item.answers[0]),
                JudgeRequest(item.question, tuple(item.answers), "")]
    direct = [v.value for v in LLMJudge(cfg, base_url, model_dir).judge(requests)]
    # The command judges through open_judge, which must use the served judge rather than
    # start its own, and get the verdicts the fixture's server gives.
    child = (
        "import json, os, sys\n"
        "from recall.config import JudgeConfig\n"
        "from recall.judge.interface import JudgeRequest\n"
        "from recall.judge.factory import open_judge\n"
        "cfg = JudgeConfig(**json.loads(sys.argv[1]))\n"
        "reqs = [JudgeRequest(q, tuple(a), c) for q, a, c in json.loads(sys.argv[2])]\n"
        "with open_judge(cfg) as judge:\n"
        "    print('VERDICTS', judge.base_url == os.environ['RECALL_JUDGE_URL'],\n"
        "          json.dumps([v.value for v in judge.judge(reqs)]))\n"
    )
    code = run_with_judge(cfg, [sys.executable, "-c", child, json.dumps(dataclasses.asdict(cfg)),
                                json.dumps([[r.question, r.answers, r.candidate]
                                            for r in requests])])
    assert code == 0
    line = next(x for x in capfd.readouterr().out.splitlines() if x.startswith("VERDICTS"))
    assert line == f"VERDICTS True {json.dumps(direct)}"


def test_a_judge_served_on_gpus_takes_the_ledgers_dtype_parallelism_and_share(monkeypatch):
    import torch
    from command_parsers import vllm_server
    from conftest import ROOT

    from recall.config import load_params
    from recall.judge.server import server_command

    paper = load_params(ROOT / "params-paper.yaml").compute
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cmd, env = server_command("models/judge", 8000, paper)
    args = vllm_server(cmd[3:])
    share = paper.judge_engine
    assert (args.dtype, args.tensor_parallel_size, args.gpu_memory_utilization) == \
        (share.dtype, share.tensor_parallel_size, share.gpu_memory_utilization) == \
        ("bfloat16", 4, 0.9)
    assert not args.enforce_eager and env == {}  # the CPU's literals stay on the CPU
    with pytest.raises(ValueError, match="pass params.compute"):
        server_command("models/judge", 8000, None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu, cpu_env = server_command("models/judge", 8000, None)
    assert vllm_server(cpu[3:]).dtype == "float32" and "--enforce-eager" in cpu
    assert cpu_env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


def test_under_a_shared_server_no_second_one_is_started(tmp_path, micro_params, monkeypatch):
    """A launch inside `recall serve-judge` (or a sweep worker's judge) reuses its server:
    the children get the same URL, and nothing new is served."""
    model = _model_dir(tmp_path, b"w1")
    monkeypatch.setenv(SHARED_URL_ENV, "http://127.0.0.1:9")
    monkeypatch.setenv(SHARED_DIGEST_ENV, weights_digest(model))
    monkeypatch.setattr("recall.judge.server.serve_judge",
                        lambda *a, **k: pytest.fail("a second judge server was started"))
    cfg = dataclasses.replace(micro_params.judge, backend="llm", base_url="", model=str(model))
    code = run_with_judge(cfg, [sys.executable, "-c",
                                f"import os, sys; sys.exit(7 if os.environ['{SHARED_URL_ENV}'] == "
                                f"'http://127.0.0.1:9' else 5)"])
    assert code == 7
