import math

import pytest

from recall.metrics import (
    accessibility_bin,
    accuracy,
    bin_labels,
    majority_vote,
    mean_pass_at_k,
    pass_at_k,
    repair_rates,
    transition_counts,
)

EDGES = (0, 1, 2, 4, 8, 16, 32, 64, 128)


def test_accuracy():
    assert accuracy([1, 0, 1, 1]) == 0.75
    with pytest.raises(ValueError):
        accuracy([])


@pytest.mark.parametrize("n,c,k,expected", [
    (4, 1, 1, 0.25),            # 1/4
    (4, 1, 2, 0.5),             # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (5, 2, 2, 0.7),             # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (10, 3, 5, 1 - 21 / 252),   # C(7,5)=21, C(10,5)=252
    (8, 0, 8, 0.0),
    (8, 1, 8, 1.0),
    (128, 2, 64, 1 - (64 * 63) / (128 * 127)),  # C(126,64)/C(128,64) = 64*63/(128*127)
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_binomial_formula():
    for n, c, k in [(20, 5, 3), (128, 10, 16), (30, 29, 2)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)


def test_pass_at_k_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 16 samples"):
        pass_at_k(8, 1, 16)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_mean_pass_at_k():
    table = mean_pass_at_k([(4, 1), (4, 0), (4, 4)], [1, 2])
    assert table[1] == pytest.approx((0.25 + 0 + 1) / 3)
    assert table[2] == pytest.approx((0.5 + 0 + 1) / 3)


def test_bins_follow_the_paper():
    assert bin_labels(EDGES) == ["0", "1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", "65-128"]
    expected = {0: "0", 1: "1", 2: "2", 3: "3-4", 4: "3-4", 5: "5-8", 16: "9-16", 17: "17-32",
                64: "33-64", 65: "65-128", 128: "65-128"}
    for count, label in expected.items():
        assert accessibility_bin(count, EDGES) == label
    with pytest.raises(ValueError):
        accessibility_bin(129, EDGES)


def test_repair_rates_hand_computed():
    base = {"a": False, "b": False, "c": False, "d": True, "e": False}
    after = {"a": True, "b": False, "c": True, "d": False, "e": False}
    access = {"a": 0, "b": 0, "c": 5, "d": 100, "e": 7}
    rates = repair_rates(base, after, access, EDGES)
    assert rates["0"] == {"wrong": 2, "repaired": 1, "rate": 0.5}
    assert rates["5-8"] == {"wrong": 2, "repaired": 1, "rate": 0.5}
    assert rates["65-128"] == {"wrong": 0, "repaired": 0, "rate": None}  # d was right: not counted
    assert transition_counts(base, after) == {"repaired": 2, "broken": 1, "kept_right": 0,
                                              "kept_wrong": 2}


def test_repair_rates_require_complete_inputs():
    with pytest.raises(ValueError, match="lack"):
        repair_rates({"a": False}, {}, {"a": 0}, EDGES)


def test_majority_vote_ties_go_to_first_seen():
    assert majority_vote(["x", "y", "y", "x"]) == "x"
    assert majority_vote(["x", "y", "y"]) == "y"
