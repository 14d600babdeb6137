"""`recall plan`: the paper params hold together and get a bill; broken copies are refused."""

import yaml
from conftest import ROOT

from recall.cli import main
from recall.config import params_from_dict
from recall.footprint import Rates, shape
from recall.plan import estimate, item_counts, problems, sweep_bill


def _paper() -> dict:
    return yaml.safe_load((ROOT / "params-paper.yaml").read_text())


def test_paper_params_hold_together_and_print_the_bill(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["plan", "--params", "params-paper.yaml"]) == 0
    out = capsys.readouterr().out
    assert ("Qwen/Qwen2.5-7B-Instruct (7.62B parameters, from configs/models/"
            "Qwen--Qwen2.5-7B-Instruct/config.json), 8 training processes") in out
    # 10,000 train items, 128 prompts per step, 8 epochs: 79 steps an epoch, 3 seeds.
    assert "| train@grpo |" in out and "| 1,896 | 22.5 |" in out
    assert "- reference model (fp32): 3.5 GiB" in out and "- colocated vLLM share: 24.0 GiB" in out
    assert "- saved model (fp32): 28.4 GiB" in out


# Qwen2.5-7B-Instruct's figures, read off the committed config.json by eye (not by the code).
H, L, FFN, KV, V = 3584, 28, 18944, 4 * 128, 152064  # hidden, layers, MLP, k/v width, vocab


def test_qwen_7b_is_counted_from_its_config_json():
    arch = shape(ROOT / "configs/models/Qwen--Qwen2.5-7B-Instruct/config.json")
    # per layer: q/o (h x h, q biased), k/v (h x kv, biased), SwiGLU (3 x h x I), 2 norms;
    # untied input and output embeddings; the final norm
    layer = 2 * H * H + H + 2 * (H * KV + KV) + 3 * H * FFN + 2 * H
    assert arch.parameters == L * layer + 2 * V * H + H == 7_615_616_512
    assert (arch.hidden, arch.layers, arch.intermediate, arch.kv_dim, arch.vocab) == (H, L, FFN, KV, V)


def test_grpo_memory_by_hand_from_the_config():
    params = params_from_dict(_paper())
    arch = shape(ROOT / "configs/models/Qwen--Qwen2.5-7B-Instruct/config.json")
    p = arch.parameters
    grpo = {r["stage"]: r for r in estimate(params, p, {"train": 1024, "val": 10, "test": 20},
                                            arch)}["train@grpo"]
    # 128 prompts over 8 ranks, micro batch 8 prompts x 5 completions x (96 + 32) tokens
    t = 8 * 5 * (96 + 32)
    assert grpo["tokens"] == t
    states = (16 + 4) * p / 8  # fp32 weights, gradients, Adam; the fp32 reference model
    checkpointed = 2 * H * t * L + 2 * (6 * H + 2 * KV + 4 * FFN) * t  # layer inputs + one layer
    logits = 4 * t * V
    assert abs(grpo["gpu_gib"] - (states + checkpointed + logits) / 1024 ** 3) < 1e-9


def test_estimate_by_hand():
    params = params_from_dict(_paper())
    rows = {r["stage"]: r for r in estimate(params, 7e9, {"train": 256, "val": 10, "test": 20})}
    # sample@base: greedy on train/val/test (286) + 128 samples of train, 256 of test (pass@k
    # to 256) + CoT on test
    assert rows["sample@base"]["samples"] == 286 + 128 * 256 + 256 * 20 + 20
    grpo = rows["train@grpo"]
    assert grpo["steps"] == 3 * 2 * 8  # 3 seeds x 2 steps per epoch x 8 epochs
    # no architecture given: the floor of 16 bytes per parameter of policy state + 4 of the
    # fp32 reference, over 8 GPUs
    assert abs(grpo["gpu_gib"] - 20 * 7e9 / 8 / 1024 ** 3) < 1e-9


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
    trainer = f"trainer (plan estimate) {22.5 / 80:.0%}"
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


def test_a_workspace_volume_too_small_for_the_study_is_refused(tmp_path):
    import shutil

    shutil.copytree(ROOT / "configs/models", tmp_path / "configs/models")
    (tmp_path / "k8s/base").mkdir(parents=True)
    storage = (ROOT / "k8s/base/storage.yaml").read_text()
    (tmp_path / "k8s/base/storage.yaml").write_text(storage.replace("storage: 2Ti",
                                                                    "storage: 1000Gi"))
    params = params_from_dict(_paper())
    arch = shape(ROOT / "configs/models/Qwen--Qwen2.5-7B-Instruct/config.json")
    judge = shape(ROOT / "configs/models/Qwen--Qwen2.5-72B-Instruct/config.json")
    assert round(judge.parameters / 1e9, 1) == 72.7
    found = [p for p in problems(params, tmp_path) if "workspace volume" in p]
    models = 6 * 3 + len(params.attribution.partitions) + 1  # methods x seeds, attribution, transfer
    need = (2 * (arch.parameters + judge.parameters) + 2 * models * 4 * arch.parameters) / 2 ** 30
    assert found == [f"k8s/base/storage.yaml: the workspace volume (1,000 GiB) cannot hold what "
                     f"the study keeps ({need:,.0f} GiB)"]
    assert not [p for p in problems(params, ROOT) if "workspace volume" in p]


def test_hours_follow_the_stated_rates(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["plan", "--params", "params-paper.yaml", "--judge-calls-per-s", "10",
                 "--samples-per-s-per-gpu", "100", "--train-tokens-per-s-per-gpu", "1000"]) == 0
    out = capsys.readouterr().out
    params = params_from_dict(_paper())
    arch = shape(ROOT / "configs/models/Qwen--Qwen2.5-7B-Instruct/config.json")
    grpo = {r["stage"]: r for r in estimate(params, arch.parameters, item_counts(params),
                                            arch)}["train@grpo"]
    # 10,000 train prompts x 8 epochs x 5 completions per seed, 3 seeds, 128 tokens each
    assert grpo["trained"] == 3 * 632 * 128 * 5
    hours = (grpo["samples"] / (100 * 8) + grpo["judge_calls"] / (10 * 1)
             + grpo["trained"] * 128 / (1000 * 8)) / 3600
    assert f"| 1,896 | 22.5 | {hours:,.1f} |" in out
    assert "(hours assume 10 judge calls/s per replica, 100 samples/s per GPU, 1000 training" in out


def test_a_staged_model_counts_only_when_it_is_the_one_params_names(tmp_path):
    import json
    import shutil

    from recall.plan import model_shape

    shutil.copytree(ROOT / "configs/models", tmp_path / "configs/models")
    staged = tmp_path / "models/base"
    staged.mkdir(parents=True)
    small = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
             "vocab_size": 1000}
    (staged / "config.json").write_text(json.dumps(small))
    params = params_from_dict(_paper())
    # a toy model left in the workspace (no staging record): the committed Qwen copy counts
    assert model_shape(params, tmp_path).parameters == 7_615_616_512
    # the pinned hub model staged here: its own config.json counts
    (staged / "recall_source.json").write_text(json.dumps(
        {"source": "hub", "repo": params.models.base.repo, "revision": "x", "path": "p"}))
    assert model_shape(params, tmp_path).source == str(staged / "config.json")


def test_a_sweep_is_billed_as_its_trials_of_one_grpo_seed():
    params = params_from_dict(_paper())
    counts = {"train": 1024, "val": 100, "test": 20}
    line = sweep_bill(params, counts, Rates(judge_calls_per_s=10, samples_per_s_per_gpu=100,
                                            train_tokens_per_s_per_gpu=1000), 8)[1]
    # 1,024 prompts at 128 a step, 8 epochs: 64 steps; 64 x 128 x 5 rollouts; val (100 items)
    # greedy every 2 steps and at the end: 33 evaluations
    steps, rollouts, evals = 64, 64 * 128 * 5, 33 * 100
    hours = ((rollouts + evals) / (100 * 8) + (rollouts + evals) / 10
             + rollouts * 128 / (1000 * 8)) / 3600
    assert (f"16 trials x one GRPO seed = {16 * steps:,} optimizer steps, "
            f"{16 * (rollouts + evals):,} judge calls (max), {16 * hours:,.1f} trial-hours on "
            f"8 GPUs each ({16 * hours * 8:,.0f} GPU-hours") in line
    assert "study recall-paper-grpo" in line
