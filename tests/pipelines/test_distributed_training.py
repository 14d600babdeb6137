"""Training stages as 2 processes on CPU (torchrun, gloo), from the same DVC stages.

The launcher (recall/launcher.py) relaunches a stage on every rank; one optimizer step must
still be `prompts_per_step * group_size` completions, only the main process may open an
MLflow run or write outputs, every rank decodes its share of the evaluation items, and the
checkpoint is chosen on val with every rank saving it together. The judge is rigged (a
scripted OpenAI-compatible server) so that val peaks at a known interior evaluation point.
It runs on a copy of the session's micro study (conftest.micro_repo): only the stages
themselves rerun (`dvc repro -s`), with 2 processes.
"""

import hashlib
import json
import re
import subprocess
from collections import Counter

import mlflow
import pytest
import yaml
from completions_server import completions_server
from conftest import copy_micro

from recall.evaluation import progress_steps
from recall.staging import weights_digest

pytestmark = pytest.mark.slow

TOY_PROMPT = re.compile(r"question : (.*) gold : (.*) candidate : (.*) verdict :$")


class RiggedJudge:
    """Val questions are right only the `peak`-th time each is graded, so val accuracy is 1
    at the `peak`-th evaluation point and 0 at every other; any other answer is right by a
    hash of its text (rewards that vary within a group, so RL moves the weights)."""

    def __init__(self, val_questions: set[str]):
        self.val, self.peak, self.graded = val_questions, 0, Counter()

    def __call__(self, prompt: str) -> str:
        question, _, candidate = TOY_PROMPT.match(prompt).groups()
        self.graded[question] += 1
        if question in self.val:
            return "1" if self.graded[question] == self.peak else "0"
        return "1" if hashlib.sha256(candidate.encode()).digest()[0] % 2 else "0"

    def start(self, peak: int) -> None:
        self.peak, self.graded = peak, Counter()


def _repro(repo, env, stage: str) -> str:
    proc = subprocess.run(["dvc", "repro", "--single-item", stage], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "launching 2 training processes" in out and "torch.distributed.run" in out
    assert len(re.findall(rf"Running stage '{stage}'", out)) == 1
    return out


@pytest.fixture(scope="module")
def two_process(micro_repo, tmp_path_factory):
    """train@grpo (val peaks at point 2 of 3), train@rft and attribution (val peaks at point
    1), each as 2 processes, against the rigged judge."""
    repo, env = copy_micro(micro_repo, tmp_path_factory, "two_process")
    items = [json.loads(x) for x in (repo / "data/validated/items.jsonl").read_text().splitlines()]
    val = {it["question"] for it in items if it["split"] == "val"}
    rig = RiggedJudge(val)
    with completions_server(rig) as (url, _):
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["compute"]["num_processes"] = 2
        params["study"].update({"seeds": [0], "sample_seeds": [0], "select_on": "val",
                                "eval_points": 3})
        params["judge"].update({"base_url": url, "model": "rigged", "fast_path": False,
                                "require_core_words": False, "cache": ""})
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        rig.start(peak=2)
        _repro(repo, env, "train@grpo")
        grpo_graded = dict(rig.graded)
        rig.start(peak=1)
        _repro(repo, env, "train@rft")
        rig.start(peak=1)
        _repro(repo, env, "attribution")
    return {"repo": repo, "params": params, "items": items, "val": val,
            "grpo_graded": grpo_graded}


def _eval_shares(items) -> list[int]:
    n_eval = sum(it["split"] in ("train", "val", "test") for it in items)
    return [-(-n_eval // 2), n_eval // 2]


def test_grpo_keeps_the_step_size_shards_evaluation_and_chooses_on_val(two_process):
    repo, items, grpo = two_process["repo"], two_process["items"], two_process["params"]["grpo"]
    n_train = sum(it["split"] == "train" for it in items)
    seed0 = json.loads((repo / "metrics/train_grpo.json").read_text())["seed0"]
    # 8 prompts per step over 2 ranks: as many steps as on one process, each rank judging half.
    assert seed0["world_size"] == 2
    assert seed0["steps"] == n_train * grpo["epochs"] // grpo["prompts_per_step"]
    assert seed0["judged"] * 2 == seed0["steps"] * grpo["prompts_per_step"] * grpo["group_size"]
    # Each rank decoded its half of the evaluation items; the main process graded each val
    # question once per evaluation point (3) and once in the final evaluation: complete,
    # and no item twice although the shorter share was padded.
    assert seed0["eval_items_per_rank"] == _eval_shares(items)
    assert {two_process["grpo_graded"][q] for q in two_process["val"]} == {4}
    # val peaked at the second of three points: that step is chosen, not the last, and the
    # trained model's weights are that checkpoint's.
    points = sorted(progress_steps(seed0["steps"], 3))
    chosen = seed0["selected"]
    assert (chosen["step"], chosen["val"], chosen["last_step"]) == (points[1], 1.0, points[2])
    assert chosen["kept_weights"] == chosen["weights"] == weights_digest(repo / "models/grpo/seed0")
    assert chosen["weights"] != chosen["last_weights"]
    assert len(set(seed0["rank_weights"])) == 1 and len(seed0["rank_weights"]) == 2
    # After training, each rank answered its slice with its own engine (greedy on train/val/
    # test, then the sampled test items), and the main process wrote every item once.
    greedy_items = [it["id"] for it in items if it["split"] in ("train", "val", "test")]
    test_items = [it["id"] for it in items if it["split"] == "test"]
    assert seed0["final_eval_items_per_rank"] == [
        len(greedy_items[r::2]) + len(test_items[r::2]) for r in (0, 1)]
    greedy = [json.loads(x)["id"] for x in
              (repo / "runs/grpo/seed0/greedy.jsonl").read_text().splitlines()]
    assert greedy == greedy_items
    sampled = [json.loads(x)["id"] for x in
               (repo / "runs/grpo/seed0/samples.jsonl").read_text().splitlines()]
    assert sampled == test_items
    assert sorted(p.name for p in (repo / "models/grpo").iterdir()) == ["seed0"]
    assert not list((repo / "checkpoints/grpo").glob("seed0/checkpoint-*"))


def test_rft_ranks_train_on_what_the_main_process_accepted(two_process):
    repo = two_process["repo"]
    rft = json.loads((repo / "metrics/train_rft.json").read_text())["seed0"]
    assert rft["eval_items_per_rank"] == _eval_shares(two_process["items"])
    for r in rft["rounds"]:  # every rank trained on the set the main process accepted
        assert len(r["accepted_by_rank"]) == 2 and len(set(r["accepted_by_rank"])) == 1
    assert (rft["selected"]["step"], rft["selected"]["last_step"]) == (1, 2)
    assert rft["selected"]["kept_weights"] == weights_digest(repo / "models/rft/seed0")
    assert len(set(rft["rank_weights"])) == 1


def test_attribution_runs_sharded_and_mlflow_has_one_run_per_stage(two_process):
    repo = two_process["repo"]
    attribution = json.loads((repo / "metrics/attribution.json").read_text())
    runs_done = [s for part in attribution["partitions"].values() for s in part.values()]
    assert runs_done and all(s["world_size"] == 2 for s in runs_done)
    assert all(len(set(s["rank_weights"])) == 1 for s in runs_done)
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["recall-toy"], output_format="list")
    for stage in ("train@grpo", "train@rft", "attribution"):
        # the micro study's own run and this one: one run more, not one per rank
        mine = [r for r in runs if r.data.tags.get("dvc.stage") == stage]
        assert len(mine) == 2, stage
    assert [r.data.tags.get("world_size") for r in runs
            if r.data.tags.get("dvc.stage") == "train@grpo"].count("2") == 1
