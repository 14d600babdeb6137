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
