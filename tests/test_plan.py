"""`recall plan`: the paper params hold together and get a bill; broken copies are refused."""

import yaml
from conftest import ROOT

from recall.cli import main
from recall.config import params_from_dict
from recall.plan import estimate, problems


def _paper() -> dict:
    return yaml.safe_load((ROOT / "params-paper.yaml").read_text())


def test_paper_params_hold_together_and_print_the_bill(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["plan", "--params", "params-paper.yaml"]) == 0
    out = capsys.readouterr().out
    assert "Qwen/Qwen2.5-7B-Instruct (7.00B parameters), 8 training processes" in out
    # 10,000 train items, 128 prompts per step, 8 epochs: 79 steps an epoch, 3 seeds.
    assert "| train@grpo |" in out and "| 1,896 | 14.7 |" in out


def test_estimate_by_hand():
    params = params_from_dict(_paper())
    rows = {r["stage"]: r for r in estimate(params, 7e9, {"train": 256, "val": 10, "test": 20})}
    # sample@base: greedy on train/val/test (286) + 128 samples of train, 256 of test (pass@k
    # to 256) + CoT on test
    assert rows["sample@base"]["samples"] == 286 + 128 * 256 + 256 * 20 + 20
    grpo = rows["train@grpo"]
    assert grpo["steps"] == 3 * 2 * 8  # 3 seeds x 2 steps per epoch x 8 epochs
    # 16 bytes per parameter of policy state + 2 of the bf16 reference, over 8 GPUs
    assert abs(grpo["gpu_gib"] - 18 * 7e9 / 8 / 1024 ** 3) < 1e-9


def test_inconsistent_copy_is_refused_naming_the_key(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    data = _paper()
    data["transfer"]["target"] = ["popqa"]
    data["models"]["base"]["revision"] = "main"
    data["sampling"]["n_samples"] = 16
    data["sampling"]["pass_k_samples"] = 64
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["plan", "--params", str(path)]) == 1
    err = capsys.readouterr().err
    assert "transfer.target ['popqa'] is not among the selected datasets' formats" in err
    assert "models.base.revision must be a full 40-hex commit" in err
    assert "study.majority_k (32) exceeds sampling.n_samples (16)" in err
    assert "analyze.pass_k [128, 256] exceeds sampling.pass_k_samples (64)" in err


def test_missing_data_and_unstaged_embedder_are_problems():
    data = _paper()
    data["data"]["select"] = ["nq_dev", "efficientqa_dev", "popqa"]
    data["data"]["datasets"][5]["hub_id"] = ""  # popqa: no local file here and no hub id
    data["models"]["embedder"]["source"] = "none"
    found = problems(params_from_dict(data), ROOT)
    assert any("data.datasets 'popqa': no file at path" in p for p in found)
    assert any("dedup.embedding_model is 'models/embedder', but models.embedder.source" in p
               for p in found)


def test_an_over_committed_gpu_is_refused_naming_the_processes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    data = _paper()
    # the judge served on the training node (no service URL), at 90% of each GPU it uses
    data["judge"]["base_url"] = ""
    data["compute"]["gpu_memory_utilization"] = 0.85
    path = tmp_path / "crowded.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["plan", "--params", str(path)]) == 1
    err = capsys.readouterr().err
    rollout = "TRL's colocated rollout engine (compute.rollout_engine) 30%"
    judge = "judge server (compute.judge_engine) 90%"
    trainer = f"trainer (plan estimate) {14.7 / 80:.0%}"
    assert f"while training, one GPU is over-committed: {trainer} + {rollout} + {judge}" in err
    assert ("while evaluating a trained model, one GPU is over-committed: evaluation engine "
            f"(compute.gpu_memory_utilization) 85% + {rollout} + {judge} = 205%") in err
    assert ("while sampling the base model, one GPU is over-committed: evaluation engine "
            f"(compute.gpu_memory_utilization) 85% + {judge} = 175%") in err


def test_the_ledger_adds_what_shares_a_gpu_at_once():
    from recall.plan import gpu_ledger, ledger_problems

    paper = params_from_dict(_paper())
    ledger = gpu_ledger(paper, training_gib=16.0)
    assert {phase: round(sum(s for _, s in claims), 3) for phase, claims in ledger.items()} == \
        {"training": 0.5, "evaluating a trained model": 0.9, "sampling the base model": 0.6}
    assert ledger_problems(ledger) == []
    data = _paper()
    data["compute"]["device"] = "cpu"  # no GPU, no ledger
    assert gpu_ledger(params_from_dict(data), 16.0) == {}
