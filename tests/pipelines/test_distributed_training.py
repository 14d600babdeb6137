"""train@grpo as 2 training processes on CPU (torchrun, gloo), from the same DVC stage.

The launcher (recall/launcher.py) relaunches the stage on every rank; one optimizer step
must still be `prompts_per_step * group_size` completions, and only the main process may
open an MLflow run or write outputs. It runs on a copy of the session's micro study
(conftest.micro_repo): only the stage itself reruns (`dvc repro -s`), with 2 processes.
"""

import json
import re
import subprocess

import mlflow
import pytest
import yaml
from conftest import copy_micro

pytestmark = pytest.mark.slow


def test_two_process_grpo_keeps_the_step_size_and_writes_once(micro_repo, tmp_path_factory):
    tmp_path, env = copy_micro(micro_repo, tmp_path_factory, "two_process")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["compute"]["num_processes"] = 2
    # select_on last: choosing on val saves from one rank, which a sharded run cannot
    params["study"].update({"seeds": [0], "sample_seeds": [0], "select_on": "last"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(["dvc", "repro", "--single-item", "train@grpo"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "launching 2 training processes" in out and "torch.distributed.run" in out

    grpo = params["grpo"]
    per_step = grpo["prompts_per_step"] * grpo["group_size"]  # 8 prompts x 4 = 32
    seed0 = json.loads((tmp_path / "metrics/train_grpo.json").read_text())["seed0"]
    n_train = sum(json.loads(x)["split"] == "train" for x in
                  (tmp_path / "data/validated/items.jsonl").read_text().splitlines())
    assert seed0["world_size"] == 2
    # 8 prompts per step over 2 ranks: as many steps as on one process, each rank judging half.
    assert seed0["steps"] == n_train * grpo["epochs"] // grpo["prompts_per_step"]
    assert seed0["judged"] * seed0["world_size"] == seed0["steps"] * per_step

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["recall-toy"], output_format="list")
    # the micro study's own train@grpo run and this one: one run more, not one per rank
    grpo_runs = [r for r in runs if r.data.tags.get("dvc.stage") == "train@grpo"]
    assert len(grpo_runs) == 2
    assert [r.data.tags.get("world_size") for r in grpo_runs].count("2") == 1
    assert sorted(p.name for p in (tmp_path / "models/grpo").iterdir()) == ["seed0"]
    greedy = (tmp_path / "runs/grpo/seed0/greedy.jsonl").read_text().splitlines()
    assert len(greedy) == len({json.loads(x)["id"] for x in greedy})  # written once, not twice
    assert not list((tmp_path / "checkpoints/grpo").glob("seed0/checkpoint-*"))
    assert len(re.findall(r"Running stage 'train@grpo'", out)) == 1
