"""Baselines: the DPO pair rule by hand, and each method trained on the micro world."""

import shutil

import pytest

from recall.baselines import accepted_samples, dpo_pairs, known_items, run_dpo, run_rft, run_sft
from recall.compute import Resolved
from recall.contract import QAItem, SampleRecord
from recall.judge.rules import RuleJudge

CPU = Resolved("cpu", bf16=False, gradient_checkpointing=False, attn_implementation="sdpa")


def _item(i, answers=("paris",)):
    return QAItem(id=i, dataset="toy", question=f"where was {i} born ?", answers=tuple(answers),
                  fact=None, split="train")


def _rec(i, completions, scores):
    return SampleRecord(id=i, split="train", model="base", prompt_style="direct",
                        temperature=1.0, completions=tuple(completions), scores=tuple(scores))


def test_dpo_pair_rule_by_hand():
    items = [_item("a"), _item("b", ("lyon", "lyons")), _item("c"), _item("d")]
    samples = {
        # chosen: the most frequent correct ("Paris" and "paris ." normalise alike: 2 votes);
        # rejected: the most frequent wrong; "rome" and "oslo" tie at 2, "rome" came first.
        "a": _rec("a", ["rome", "Paris", "oslo", "paris .", "rome", "oslo", ""], [0, 1, 0, 1, 0, 0, 0]),
        # no correct sample: the gold answer (first alias) is chosen
        "b": _rec("b", ["nice", "nice", "metz"], [0, 0, 0]),
        # nothing wrong (an empty completion is not a usable rejection): no pair
        "c": _rec("c", ["paris", ""], [1, 0]),
        "d": _rec("d", ["", "x", "paris"], [0, 0, 1]),
    }
    pairs = {p.item_id: p for p in dpo_pairs(items, samples)}
    assert set(pairs) == {"a", "b", "d"}
    assert (pairs["a"].chosen, pairs["a"].rejected, pairs["a"].chosen_from) == ("Paris", "rome", "sample")
    assert (pairs["b"].chosen, pairs["b"].rejected, pairs["b"].chosen_from) == ("lyon", "nice", "gold")
    assert (pairs["d"].chosen, pairs["d"].rejected) == ("paris", "x")
    assert pairs["a"].prompt == "where was a born ?"  # the prompt style renders it per model


def test_dpo_pairs_need_base_samples():
    with pytest.raises(ValueError, match="no base samples for item z"):
        dpo_pairs([_item("z")], {})


def test_known_items_filter_by_accessibility():
    items = [_item("a"), _item("b"), _item("c")]
    samples = {"a": _rec("a", ["x", "y"], [0, 0]), "b": _rec("b", ["x", "y"], [1, 0]),
               "c": _rec("c", ["x", "y"], [1, 1])}
    assert [it.id for it in known_items(items, samples, 0)] == ["a", "b", "c"]
    assert [it.id for it in known_items(items, samples, 1)] == ["b", "c"]
    assert [it.id for it in known_items(items, samples, 2)] == ["c"]
    with pytest.raises(ValueError, match="no base samples for 1 items"):
        known_items(items + [_item("d")], samples, 1)


@pytest.fixture(scope="module")
def micro(tiny_model):
    from recall.engines import TransformersEngine
    from recall.sampling import rollout_settings, sample_items

    model_dir, world, params = tiny_model
    train = [i for i in world.items if i.split == "train"][:16]
    engine = TransformersEngine(str(model_dir))
    records, _ = sample_items(engine, RuleJudge(), train, rollout_settings(params.rollout, 8, 0),
                              "base")
    return model_dir, train, {r.id: r for r in records}, params


def _changed(a, b) -> bool:
    import torch
    from transformers import AutoModelForCausalLM

    ma, mb = AutoModelForCausalLM.from_pretrained(a), AutoModelForCausalLM.from_pretrained(b)
    return any(not torch.equal(x, y) for x, y in zip(ma.parameters(), mb.parameters()))


def test_sft_trains_on_gold_and_known_only_filters(micro, tmp_path):
    model_dir, train, samples, params = micro
    out = run_sft(model_dir, train, samples, params.sft, tmp_path / "sft", seed=0, compute=CPU)
    assert out["items"] == len(train) and out["steps"] == 2  # 16 items, batch 8, 1 epoch
    assert _changed(model_dir, tmp_path / "sft")
    known = run_sft(model_dir, train, samples, params.sft_known, tmp_path / "known", seed=0, compute=CPU)
    assert known["items"] == sum(sum(r.scores) >= 1 for r in samples.values())


def test_dpo_trains_on_pairs(micro, tmp_path):
    model_dir, train, samples, params = micro
    out = run_dpo(model_dir, train, samples, params.dpo, tmp_path / "dpo", seed=0, compute=CPU)
    assert out["items"] == len(dpo_pairs(train, samples)) > 0
    assert _changed(model_dir, tmp_path / "dpo")
    losses = [h["loss"] for h in out["log_history"] if "loss" in h]
    assert losses and abs(losses[0] - 0.6931) < 0.01  # log 2: policy == reference at step 1


def test_rft_rounds_accept_only_judged_correct(micro, tmp_path):
    model_dir, train, samples, params = micro
    seen = []
    out = run_rft(model_dir, train, RuleJudge(), params.rft, params.rollout, tmp_path / "rft",
                  seed=0, compute=CPU, on_round=lambda r, m, t, save: seen.append(r))
    assert seen == [1, 2] and [r["round"] for r in out["rounds"]] == [1, 2]
    for r in out["rounds"]:  # at most one accepted sample per distinct correct answer
        assert r["items_with_correct"] <= r["accepted"] <= len(train) * params.rft.samples_per_item
    # A round that accepted anything fine-tuned the model; the saved directory is that model.
    assert _changed(model_dir, tmp_path / "rft") == any(r["accepted"] for r in out["rounds"])
    assert not (tmp_path / "rft" / "_work").exists()


def test_rft_accepts_each_distinct_judged_correct_answer_once():
    items = [_item("q0", ("paris",)), _item("q1", ("rome",))]
    records = [_rec("q0", [" Paris", "paris.", "lyon", " ", "The Paris"], [1, 1, 0, 1, 1]),
               _rec("q1", ["milan", "rome"], [0, 0])]
    # "paris." normalises like " Paris"; the blank one is never accepted, even judged correct;
    # "rome" was judged wrong, and the judge's verdict is what counts, not a string match.
    assert [(it.id, c) for it, c in accepted_samples(records, items)] == \
        [("q0", " Paris")]


class _Crash(Exception):
    pass


def _crash_at(step: int):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Crash(f"killed at step {step}")
    return Crash()


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_sft_and_dpo_resume_from_their_last_checkpoint_to_the_same_weights(micro, tmp_path, method):
    import dataclasses

    from recall.staging import weights_digest

    model_dir, train, samples, params = micro
    run = {"sft": run_sft, "dpo": run_dpo}[method]
    cfg = dataclasses.replace(getattr(params, method), epochs=2, save_steps=2)
    items = train  # 16 items, batch 8: 2 steps an epoch (DPO: as many pairs as it finds)
    whole = run(model_dir, items, samples, cfg, tmp_path / "whole", 0, CPU,
                checkpoint_dir=tmp_path / "ckpt_whole")
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Crash):
        run(model_dir, items, samples, cfg, tmp_path / "killed", 0, CPU, [_crash_at(3)], ckpt)
    assert sorted(p.name for p in ckpt.glob("checkpoint-*")) == ["checkpoint-2"]
    # A kill while step 4 was being saved: its directory lacks trainer_state.json (written
    # last), and resuming from it would fail on every rerun. It is passed over.
    shutil.copytree(ckpt / "checkpoint-2", ckpt / "checkpoint-4",
                    ignore=shutil.ignore_patterns("trainer_state.json"))
    resumed = run(model_dir, items, samples, cfg, tmp_path / "resumed", 0, CPU, checkpoint_dir=ckpt)
    assert whole["resumed_from"] is None and resumed["resumed_from"] == str(ckpt / "checkpoint-2")
    assert resumed["steps"] == whole["steps"]
    assert weights_digest(tmp_path / "resumed") == weights_digest(tmp_path / "whole")
    assert not list(ckpt.glob("checkpoint-*"))  # a finished run leaves no checkpoint
    # (A checkpoint of other settings is removed, not resumed: resume_point, shared with the
    # RL trainers and tested in tests/test_training.py.)


def test_rft_resumes_from_the_last_round_kept_to_the_same_model(micro, tmp_path):
    import dataclasses

    from recall.staging import weights_digest

    model_dir, train, samples, params = micro
    cfg = dataclasses.replace(params.rft, rounds=3)

    def rft(out, ckpt, on_round=None):
        return run_rft(model_dir, train, RuleJudge(), cfg, params.rollout, tmp_path / out, 0, CPU,
                       on_round, checkpoint_dir=tmp_path / ckpt)
    whole = rft("whole", "ckpt_whole")

    def crash(r, *_):
        if r == 2:
            raise _Crash("killed after round 2")
    with pytest.raises(_Crash):
        rft("killed", "ckpt", crash)
    assert [p.name for p in (tmp_path / "ckpt").glob("checkpoint-*")] == ["checkpoint-1"]
    seen = []
    resumed = rft("resumed", "ckpt", lambda r, *_: seen.append(r))
    assert resumed["resumed_from"] == str(tmp_path / "ckpt/checkpoint-1") and seen == [2, 3]
    assert resumed["rounds"] == whole["rounds"]
    assert weights_digest(tmp_path / "resumed") == weights_digest(tmp_path / "whole")
    assert not list((tmp_path / "ckpt").glob("checkpoint-*"))
