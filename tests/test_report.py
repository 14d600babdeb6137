"""Report maths by hand: majority vote, attribution shares, transfer gains, spreads."""

import pytest

from recall.contract import SampleRecord
from recall.report import attribution_shares, majority_vote_accuracy, spread, transfer_gains


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
