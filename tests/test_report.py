"""Report maths by hand: majority vote, chain-of-thought, attribution shares, transfer gains,
spreads; and the report's Table 1 rows."""

import pytest

from recall.contract import SampleRecord
from recall.report import (
    attribution_shares,
    inference_baselines,
    majority_vote_accuracy,
    spread,
    transfer_gains,
)


def _rec(i, completions, scores, split="test"):
    return SampleRecord(id=i, split=split, model="m", prompt_style="direct", temperature=1.0,
                        completions=tuple(completions), scores=tuple(scores))


def test_majority_vote_normalises_breaks_ties_first_seen_and_uses_the_winners_verdict():
    recs = [
        # "The Paris" and "paris" normalise alike: 2 votes beat "rome" (1); right.
        _rec("a", ["rome", "The Paris", "paris", "oslo"], [0, 1, 1, 0]),
        # tie 2-2 in the first 4: "oslo" came first and is wrong; the 5th sample is ignored.
        _rec("b", ["oslo", "lyon", "lyon", "oslo", "lyon"], [0, 1, 1, 0, 1]),
        _rec("c", ["x", "y", "z", "w"], [0, 0, 1, 0], split="train"),  # other split: ignored
    ]
    assert majority_vote_accuracy(recs, k=4) == 0.5
    with pytest.raises(ValueError, match="needs 6 samples; item a has 4"):
        majority_vote_accuracy(recs, k=6)


def _qa(i, dataset, split="test"):
    from recall.contract import QAItem

    return QAItem(i, dataset, f"q {i} ?", ("x",), None, split)


def test_inference_baselines_per_dataset():
    items = [_qa("n0", "nq"), _qa("n1", "nq"), _qa("s0", "simpleqa"), _qa("r0", "nq", "train")]
    samples = [_rec("n0", ["a", "b", "a"], [1, 0, 1]), _rec("n1", ["b", "a", "b"], [1, 0, 1]),
               _rec("s0", ["a", "b", "b"], [0, 1, 1]), _rec("r0", ["a"] * 3, [1] * 3, "train")]
    cot = [_rec("n0", ["a"], [1]), _rec("n1", [""], [0]), _rec("s0", ["b"], [1])]
    out = inference_baselines(samples, cot, items, k=2)
    # k=2: n0 "a" vs "b" tie -> "a" (first) right; n1 "b" right; s0 tie -> "a" wrong
    assert out["majority"] == {"nq": 1.0, "simpleqa": 0.0}
    assert out["cot"] == {"nq": 0.5, "simpleqa": 1.0}
    assert out["cot_no_answer"] == pytest.approx(1 / 3)  # n1 gave no final answer
    assert inference_baselines(samples, None, items, k=2)["cot"] is None
    with pytest.raises(ValueError, match="cover 1 of 2"):  # a missing nq test item is an error
        inference_baselines(samples, cot[:1] + cot[2:], items, k=2)
    with pytest.raises(ValueError, match="no test samples"):
        inference_baselines(samples[:2], None, items, k=2)


def _greedy(oks, prefix="t"):
    return [_rec(f"{prefix}{i}", ["x"], [int(ok)]) for i, ok in enumerate(oks)]


def test_attribution_share_is_partition_gain_over_full_gain():
    base = _greedy([1, 0, 0, 0])  # 0.25
    full = {0: (_greedy([1, 1, 1, 0]), []), 1: (_greedy([1, 1, 0, 1]), [])}  # gain 0.5 both
    parts = {"low": {0: _greedy([1, 1, 0, 0]), 1: _greedy([1, 0, 0, 0])},  # gains 0.25, 0
             "high": {0: _greedy([1, 1, 1, 1]), 1: _greedy([1, 1, 1, 0])}}  # 0.75, 0.5
    out = attribution_shares(base, full, parts)
    assert out["full_gain"]["mean"] == 0.5
    assert out["partitions"]["low"]["share"]["values"] == [0.5, 0.0]
    assert out["partitions"]["high"]["share"]["mean"] == pytest.approx(1.25)


def test_transfer_gain_on_each_side():
    base = _greedy([1, 0, 0, 1])
    runs = {0: _greedy([1, 1, 0, 1]), 1: _greedy([1, 1, 1, 1])}
    out = transfer_gains(base, runs, ["t0", "t1"], ["t2", "t3"])
    assert out["source"]["base"] == 0.5 and out["source"]["gain"]["values"] == [0.5, 0.5]
    assert out["target"]["gain"]["values"] == [0.0, 0.5] and out["target"]["n"] == 2
    with pytest.raises(ValueError, match="cover 2 of 3"):
        transfer_gains(base, runs, ["t0", "t1", "zz"], ["t2"])


def test_spread_is_sample_std():
    s = spread([0.1, 0.3])
    assert s["mean"] == pytest.approx(0.2) and s["std"] == pytest.approx(0.1414, abs=1e-4)
    assert spread([0.5])["std"] == 0.0


def _items(n):
    from recall.contract import QAItem

    return [QAItem(id=f"t{i}", dataset="toy", question="q ?", answers=("a",), fact=None,
                   split="test") for i in range(n)] + \
        [QAItem(id="r0", dataset="toy", question="q ?", answers=("a",), fact=None, split="train")]


def _run(test_oks, train_ok=1):
    return _greedy(test_oks) + [_rec("r0", ["x"], [train_ok], split="train")]


def test_method_table_by_hand():
    from recall.config import AnalyzeConfig
    from recall.report import method_table

    cfg = AnalyzeConfig(pass_k=(1, 2), bin_edges=(0, 1, 2))
    base_greedy = _run([1, 0, 0, 0], train_ok=0)  # test 0.25
    # base samples: t0 2/2, t1 1/2, t2 0/2, t3 1/2
    base_samples = [_rec(f"t{i}", ["a", "b"], s) for i, s in
                    enumerate([[1, 1], [1, 0], [0, 0], [0, 1]])] + [_rec("r0", ["a", "b"], [0, 0], "train")]
    methods = {
        "grpo": {0: (_run([1, 1, 0, 1]), base_samples), 1: (_run([1, 1, 0, 0]), [])},  # 0.75, 0.5
        "sft": {0: (_run([0, 1, 0, 0]), []), 1: (_run([1, 0, 0, 0]), [])},  # 0.25, 0.25
    }
    table = method_table((base_greedy, base_samples), methods, _items(4), cfg, n_access=2)
    g = table["grpo"]
    assert table["base"] == {"toy": 0.25} and g["accuracy"]["toy"]["values"] == [0.75, 0.5]
    assert g["gain_rel"]["toy"]["mean"] == pytest.approx(1.5)  # (0.625 - 0.25) / 0.25
    # base-wrong items by accessibility: t2 in bin "0", t1 and t3 in bin "1"; repaired in
    # seed 0: t1, t3 (bin 1: 2/2), seed 1: t1 (1/2) -> mean 0.75; bin 0 never repaired
    assert g["repair"] == {"0": 0.0, "1": 0.75, "2": None}
    assert table["sft"]["broken_rate"]["values"] == [1.0, 0.0]  # seed 0 lost t0, the one right item
    assert g["pass_at_k_seeds"] == [0] and table["sft"]["pass_at_k"] is None
    assert g["train_accuracy"]["mean"] == 1.0 and table["base_train_accuracy"] == 0.0
    # no val items here: no val column, rather than a made-up one
    assert table["base_val_accuracy"] is None and g["val_accuracy"] is None
