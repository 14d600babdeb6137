"""Shared fixtures: the real params.yaml shrunk to a micro world, and a tiny trained model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from ci_guard import pytest_runtest_makereport  # noqa: F401  (a hook: CI refuses guarded skips)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"  # the real dataset files beside the checkout
# Skipped without them, except under CI=true, where the skip fails (see `ci_required` below).
SHARED_MARKS = (pytest.mark.skipif(not SHARED.exists(), reason=f"no {SHARED}"),
                pytest.mark.ci_required)


def needs_shared(test):
    """The test reads ../shared/data (SHARED_MARKS as a decorator)."""
    for mark in SHARED_MARKS:
        test = mark(test)
    return test
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MICRO = {
    "world": {"n_instruction": 40, "n_rl_train": 16, "n_val": 8, "n_test": 16,
              "values_per_relation": 12, "first_name_pool": 12, "last_name_pool": 12,
              "exposure_max": 20, "planted_leaks": 8, "planted_distractors": 8,
              # One-word answers from a fixed list: a micro model learns some of them in
              # seconds; the pooled two-word world (params.yaml) has tests of its own.
              "value_words": 1, "answer_pool": 0},
    "pretrain": {"steps": 600, "batch_size": 16, "n_layer": 2, "n_embd": 32, "n_head": 1,
                 "warmup_steps": 10, "learning_rate": 1.0e-2},
    "sampling": {"engine": "transformers", "n_samples": 8, "pass_k_samples": 16},
    "grpo": {"prompts_per_step": 8, "micro_batch_prompts": 4, "group_size": 4, "epochs": 1,
             "save_steps": 2},
    "analyze": {"pass_k": [1, 2, 4, 8, 16], "bin_edges": [0, 1, 2, 4, 8]},
    # 12x12 names: a name word is in ~8% of micro questions, so 5% would call names common.
    "dedup": {"max_df": 0.2},
    "judge_model": {"steps": 60, "batch_size": 32, "n_embd": 32, "n_head": 1},
    "rloo": {"prompts_per_step": 8, "micro_batch_prompts": 4, "group_size": 4, "epochs": 1,
             "save_steps": 2},
    "sft": {"epochs": 1, "batch_size": 8},
    "sft_known": {"epochs": 1, "batch_size": 8},
    "dpo": {"epochs": 1, "batch_size": 8},
    "rft": {"rounds": 2, "samples_per_item": 2, "batch_size": 8},
    "study": {"seeds": [0, 1], "sample_seeds": [0], "eval_points": 2, "majority_k": 4,
              "sample_methods": ["grpo", "rloo", "sft", "sft_known", "dpo", "rft"]},
    "bases": {"seeds": [1]},  # one more micro base: the over-bases rows run end to end
    # On, though the toy model cannot reason: the micro study runs the paper profile's path.
    "cot": {"run": True, "max_tokens": 12},
    # The micro model may sample no right answer at all, so the second partition is "any".
    # p(gold) labels are off here: the micro model knows a fact or not, so its tail partition
    # is empty (tests/test_latent.py splits by label; `make experiment` runs the partitions).
    "attribution": {"partitions": {"inaccessible": [0, 0], "any": [0, 8]},
                    "prompts_per_step": 4, "seeds": [0], "latent": False},
    "transfer": {"seeds": [0]},
}


def copy_repo(dest: Path, params: dict) -> dict:
    """The project's files (no outputs) in `dest` as a fresh git repo with `params` as its
    params.yaml; returns the environment to run `dvc` there with."""
    from recall.micro_model import scratch_repo

    scratch_repo(ROOT, dest, params)
    return repo_env()


def repo_env() -> dict:
    """The environment the end-to-end tests run the project's commands with."""
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DVC_EXP_NAME", None)
    return env


def micro_params_dict() -> dict:
    """params.yaml with the MICRO overrides: same keys, tiny sizes."""
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in MICRO.items():
        data[section].update(values)
    return data


def run_ok(cmd: list[str], cwd, env, timeout: int = 1800) -> str:
    """Run a command of the project (dvc, a stage) and return its output; fail with its tail."""
    import subprocess

    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def micro_repo(tmp_path_factory):
    """The toy micro study reproduced as `make experiment` does it (the judge first, then
    every other stage under one served judge), shared by every end-to-end test of the toy
    profile: the suite's one toy pipeline run. Tests only read it, or work on `copy_micro`.
    Under pytest-xdist the first worker to need it builds it and the others wait for it
    (a file lock in the workers' common temp root). Returns (project, env, the two
    commands' output)."""
    from filelock import FileLock

    if reuse := os.environ.get("RECALL_TEST_MICRO_REPO"):
        # Iterating on one end-to-end test: the micro_repo directory an earlier run built
        # (its micro_repo.out beside it) instead of ~7 minutes of rebuilding. Read only.
        dest = Path(reuse)
        return dest, repo_env(), (dest.parent / "micro_repo.out").read_text()
    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    root = tmp_path_factory.getbasetemp()
    root = root.parent if shared else root
    dest, log = root / "micro_repo", root / "micro_repo.out"
    with FileLock(str(root / "micro_repo.lock")):
        if not log.exists():  # written last: a failed build is retried, not half-used
            if dest.exists():
                import shutil

                shutil.rmtree(dest)
            dest.mkdir()
            env = copy_repo(dest, micro_params_dict())
            out = run_ok(["dvc", "repro", "judge"], dest, env)
            out += run_ok(["recall", "serve-judge", "--", "dvc", "repro"], dest, env)
            log.write_text(out)
    return dest, repo_env(), log.read_text()


def copy_micro(micro_repo, tmp_path_factory, name: str):
    """A copy of the reproduced micro project (git, DVC cache, MLflow store and outputs)."""
    import shutil

    dest, env, _ = micro_repo
    copy = tmp_path_factory.mktemp(name) / "repo"
    shutil.copytree(dest, copy, symlinks=True)
    return copy, env


@pytest.fixture
def micro_params():
    from recall.config import params_from_dict

    return params_from_dict(micro_params_dict())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A micro world and a GPT-2 pretrained on it for a few steps (seconds on CPU)."""
    from recall.compute import resolve
    from recall.config import params_from_dict
    from recall.pretraining import build_tokenizer, corpus_documents, pretrain
    from recall.world import generate_world

    params = params_from_dict(micro_params_dict())
    world = generate_world(params.world, seed=0)
    out = tmp_path_factory.mktemp("tiny_model")
    tok = build_tokenizer([it.question for it in world.items]
                          + [a for it in world.items for a in it.answers] + list(world.biographies))
    docs = corpus_documents(world.biographies, [i for i in world.items if i.split == "instruct"],
                            params.pretrain.qa_repeats, seed=0)
    pretrain(params.pretrain, docs, tok, out, seed=0, compute=resolve(params.compute))
    return out, world, params


@pytest.fixture(scope="session")
def toy_judge(tmp_path_factory):
    """A micro toy judge model directory (few steps: right format, not accurate)."""
    import random

    from recall.compute import resolve
    from recall.config import params_from_dict
    from recall.judge.training import judge_pairs, judge_tokenizer, train_judge
    from recall.world import generate_world

    params = params_from_dict(micro_params_dict())
    world = generate_world(params.world, seed=0)
    out = tmp_path_factory.mktemp("toy_judge")
    pairs = judge_pairs(list(world.items), random.Random(0), params.judge_model.negatives)
    train_judge(params.judge_model, judge_tokenizer(world.items), pairs, out, seed=0,
                compute=resolve(params.compute))
    return out, world, params


@pytest.fixture(scope="session")
def judge_server(toy_judge, tmp_path_factory):
    """A real vLLM OpenAI-compatible server on CPU serving the micro toy judge."""
    from recall.judge.server import serve_judge

    model_dir, world, params = toy_judge
    log = tmp_path_factory.mktemp("logs") / "judge_server.log"
    with serve_judge(str(model_dir), log_path=log) as base_url:
        yield base_url, str(model_dir), world, params


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL server; yields a function making a fresh database URL by name."""
    import postgres_server
    from pods import open_up

    root = tmp_path_factory.mktemp("pg")
    # The server user must reach its data through every parent: under xdist the 0700
    # pytest-of-<user> is one level further up than without it.
    open_up(root)
    proc, port = postgres_server.start(root / "server")
    yield lambda name: postgres_server.create_database(port, name)
    postgres_server.stop(proc)


# The `slow` rule: a test is slow when it starts a server (vLLM, PostgreSQL, the MLflow
# server, a browser) or runs a pipeline as processes (dvc, a stage script, a scripts/ script,
# accelerate). In-process training on the micro models is not slow (seconds). A fixture that
# starts a server makes every test using it slow, and tests/pipelines/ is end-to-end by
# definition; other tests carry the mark themselves. `make test-fast` runs the rest.
SLOW_FIXTURES = frozenset({"judge_server", "postgres"})
SLOW_DIRS = frozenset({"pipelines"})


# Under pytest-xdist (`make test`: two workers, one test file per work unit) the files with
# the longest fixtures go first, longest first, so that one worker starts the paper study
# while the other takes the toy study and the rest; the slowest file starting last would set
# the suite's time. Ordered by their measured times (README, "The test suite"); every other
# file keeps pytest-randomly's order.
LONGEST_FIRST = ("pipelines/test_paper_profile.py", "pipelines/test_distributed_training.py",
                 "pipelines/test_cluster_pods.py", "pipelines/test_multinode_pods.py",
                 "pipelines/test_sweep_pods.py",
                 "pipelines/test_dvc_repro.py",
                 "pipelines/test_leakage_guard.py", "test_sweep.py", "test_gpu_check.py",
                 "judge/test_client.py")


def pytest_configure(config):
    """An xdist worker gets its share of the cores: torch, OpenMP and vLLM each spreading
    over every core from two workers at once would spin against each other."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is None:
        return
    threads = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))
    os.environ.setdefault("OMP_NUM_THREADS", threads)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # not both on core 0
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle
def pytest_collection_modifyitems(config, items):
    """Apply the slow rule; `gpu` tests need CUDA and are skipped with the reason elsewhere."""
    import torch

    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        tests = ROOT / "tests"

        def order(item):
            rel = item.path.relative_to(tests).as_posix() if item.path.is_relative_to(tests) else ""
            return rank.get(rel, len(rank))
        items.sort(key=order)  # stable: the shuffled order within and after those files
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) \
                or item.path.parent.name in SLOW_DIRS:
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
